-- Bulk imports (see the PostgreSQL migration of the same name). Times are
-- milliseconds since the epoch.
CREATE TABLE uploads (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('import')),
    content_type TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'uploaded')),
    size_bytes   INTEGER,
    object_key   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    uploaded_at  INTEGER
);
CREATE INDEX uploads_tenant ON uploads (tenant_id, created_at DESC, id DESC);

CREATE TABLE users (
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    email      TEXT,
    name       TEXT,
    time_zone  TEXT,
    locale     TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
