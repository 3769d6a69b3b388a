-- Jobs: the row is the job's state and, on the embedded queue, its message.
-- Times are INTEGER milliseconds since the Unix epoch, so that comparisons in
-- SQL are exact and cheap.
CREATE TABLE jobs (
    id                  TEXT    PRIMARY KEY NOT NULL,
    tenant_id           TEXT    NOT NULL,
    user_id             TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    lane                TEXT    NOT NULL,
    status              TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    payload             TEXT    NOT NULL,
    result              TEXT,
    error               TEXT,
    errors              TEXT    NOT NULL DEFAULT '[]',
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL CHECK (max_attempts > 0),
    priority            INTEGER NOT NULL DEFAULT 0,
    progress            INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    run_at              INTEGER NOT NULL,
    lease_until         INTEGER,
    locked_by           TEXT,
    cancel_requested_at INTEGER,
    idempotency_key     TEXT,
    request_hash        TEXT,
    traceparent         TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER
) STRICT;

CREATE INDEX jobs_claim ON jobs (lane, priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lane, lease_until) WHERE status = 'running';
-- Dead jobs per lane, for the dead-letter views.
CREATE INDEX jobs_dead ON jobs (lane, id DESC) WHERE status = 'dead';
-- Throughput over the last minutes, and pruning of old finished jobs.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_user ON jobs (tenant_id, user_id, id DESC);
CREATE INDEX jobs_tenant ON jobs (tenant_id, id DESC);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE lanes (
    lane       TEXT    PRIMARY KEY NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE leader_leases (
    name        TEXT    PRIMARY KEY NOT NULL,
    holder      TEXT    NOT NULL,
    lease_until INTEGER NOT NULL
) STRICT;
