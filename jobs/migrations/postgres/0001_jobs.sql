-- Jobs: the row is the job's state and, on the embedded queue, its message.
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
);

-- The claim: due jobs of one lane, highest priority first. Partial, so the
-- index only holds the queue itself, not the history.
CREATE INDEX jobs_claim ON jobs (lane, priority DESC, run_at, id) WHERE status = 'queued';
-- The reaper and the in-flight counts: running jobs by lease expiry.
CREATE INDEX jobs_leases ON jobs (lane, lease_until) WHERE status = 'running';
-- Dead jobs per lane, for the dead-letter views.
CREATE INDEX jobs_dead ON jobs (lane, id DESC) WHERE status = 'dead';
-- Throughput over the last minutes, and pruning of old finished jobs.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Job lists: a user's own, newest first, and a tenant's (admins).
CREATE INDEX jobs_user ON jobs (tenant_id, user_id, id DESC);
CREATE INDEX jobs_tenant ON jobs (tenant_id, id DESC);
-- A retried request with the same key finds the job it created.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

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
