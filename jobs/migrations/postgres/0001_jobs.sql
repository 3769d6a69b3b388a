-- Jobs: one row per job, its whole record. Its indexes cover only columns
-- that never change after insert, so the updates of a job's life (claim,
-- heartbeat, progress, completion) are HOT updates: they rewrite the row in
-- place on its page and touch no index. fillfactor leaves that room.
CREATE TABLE jobs (
    id                  uuid        PRIMARY KEY,
    tenant_id           text        NOT NULL,
    user_id             text        NOT NULL,
    kind                text        NOT NULL,
    lane                text        NOT NULL,
    status              text        NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    payload             jsonb       NOT NULL,
    result              jsonb,
    error               text,
    errors              jsonb       NOT NULL DEFAULT '[]',
    attempts            integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL CHECK (max_attempts > 0),
    priority            smallint    NOT NULL DEFAULT 0,
    progress            smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    run_at              timestamptz NOT NULL DEFAULT now(),
    lease_until         timestamptz,
    locked_by           text,
    cancel_requested_at timestamptz,
    idempotency_key     text,
    request_hash        text,
    traceparent         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz
) WITH (fillfactor = 60);

-- Job lists: a user's own, newest first, and a tenant's (admins). Ids are
-- UUIDv7, so id order is creation order.
CREATE INDEX jobs_user ON jobs (tenant_id, user_id, id DESC);
CREATE INDEX jobs_tenant ON jobs (tenant_id, id DESC);
-- A retried request with the same key finds the job it created.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The embedded queue: one narrow row per job that is waiting, running, or
-- dead (the dead-letter queue). Claims, leases and the queue views read only
-- this table; a succeeded or cancelled job leaves it. Lock order, everywhere:
-- job_queue before jobs, or SKIP LOCKED, so that no two statements deadlock.
CREATE TABLE job_queue (
    id          uuid        PRIMARY KEY,
    lane        text        NOT NULL,
    priority    smallint    NOT NULL,
    run_at      timestamptz NOT NULL,
    -- Set while a worker holds the job.
    lease_until timestamptz,
    dead        boolean     NOT NULL DEFAULT false
);
-- The claim: due jobs of one lane, highest priority first.
CREATE INDEX job_queue_claim ON job_queue (lane, priority DESC, run_at, id)
    WHERE lease_until IS NULL AND NOT dead;
-- The reaper and the in-flight counts.
CREATE INDEX job_queue_leases ON job_queue (lane, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX job_queue_dead ON job_queue (lane) WHERE dead;

-- Jobs finished per lane and minute, for throughput without an index on
-- finished_at (which would cost every completion its HOT update).
CREATE TABLE lane_minutes (
    lane     text        NOT NULL,
    minute   timestamptz NOT NULL,
    finished bigint      NOT NULL,
    PRIMARY KEY (lane, minute)
);

CREATE TABLE lanes (
    lane       text        PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Named leases, for electing the one scheduler that leads.
CREATE TABLE leader_leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    lease_until timestamptz NOT NULL
);
