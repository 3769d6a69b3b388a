-- Bulk imports (see jobs/src/imports and the bulk_import kind).
--
-- An upload is a file an admin sends for a job to read: announced first
-- (`pending`, with where its bytes go, `object_key`, under the tenant's
-- prefix), then `uploaded` once the bytes are there, with their size.
CREATE TABLE uploads (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    purpose      text        NOT NULL CHECK (purpose IN ('import')),
    content_type text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'uploaded')),
    size_bytes   bigint,
    object_key   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    uploaded_at  timestamptz
);
CREATE INDEX uploads_tenant ON uploads (tenant_id, created_at DESC, id DESC);

-- A tenant's users as its admins know them: imported in bulk, keyed by the
-- id their tokens carry (`sub`). Every column but the key is optional; an
-- import leaves a column it has no value for as it is.
CREATE TABLE users (
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    email      text,
    name       text,
    time_zone  text,
    locale     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
