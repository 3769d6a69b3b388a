-- Files jobs produced. A row is written in the statement that commits its
-- job's success, so an artifact is visible exactly when its job succeeded;
-- the object itself was uploaded before, under a key of its attempt.
CREATE TABLE artifacts (
    id           uuid        PRIMARY KEY,
    job_id       uuid        NOT NULL,
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    name         text        NOT NULL,
    content_type text        NOT NULL,
    object_key   text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_job ON artifacts (job_id);
