-- Files jobs produced; written with their job's success (see the PostgreSQL
-- migration of the same name).
CREATE TABLE artifacts (
    id           TEXT    PRIMARY KEY,
    job_id       TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    object_key   TEXT    NOT NULL,
    size_bytes   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX artifacts_job ON artifacts (job_id);
