-- Photos users register for their videos. A row is made when the upload is
-- announced (`pending`); once the bytes are there they are checked, and the
-- row becomes `ready` (with the type sniffed from the content and the size)
-- or `rejected` (with the reason). The object lives at `object_key`, under
-- the tenant's prefix.
CREATE TABLE media (
    id            uuid        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    user_id       text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'ready', 'rejected')),
    declared_type text        NOT NULL,
    content_type  text,
    size_bytes    bigint,
    width         integer,
    height        integer,
    taken_at      timestamptz,
    caption       text,
    error         text,
    object_key    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_user ON media (tenant_id, user_id, created_at DESC, id DESC);
