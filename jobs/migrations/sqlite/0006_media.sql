-- Photos users register for their videos (see the PostgreSQL migration of
-- the same name). Times are milliseconds since the epoch.
CREATE TABLE media (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'ready', 'rejected')),
    declared_type TEXT    NOT NULL,
    content_type  TEXT,
    size_bytes    INTEGER,
    width         INTEGER,
    height        INTEGER,
    taken_at      INTEGER,
    caption       TEXT,
    error         TEXT,
    object_key    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX media_user ON media (tenant_id, user_id, created_at DESC, id DESC);
