-- What the admin surfaces keep: who did what (the audit log), dashboard
-- sessions, the worker instances that are alive, and failures per lane and
-- minute next to the throughput already counted there.

-- One row per admin action. `tenant_id` is the actor's; `subject_tenant` is
-- the tenant of what was acted on, when that is one tenant (a job), so that
-- both tenants' admins can read it.
CREATE TABLE audit_log (
    id             bigserial   PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    tenant_id      text        NOT NULL,
    actor          text        NOT NULL,
    role           text        NOT NULL,
    action         text        NOT NULL,
    target         text        NOT NULL,
    subject_tenant text,
    detail         jsonb       NOT NULL DEFAULT '{}',
    source_ip      text,
    user_agent     text
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_subject ON audit_log (subject_tenant, id DESC) WHERE subject_tenant IS NOT NULL;

-- Dashboard sessions. Only a hash of the cookie's secret is stored, so a
-- copy of this table opens no session.
CREATE TABLE admin_sessions (
    id_hash    text        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    role       text        NOT NULL,
    csrf       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- Each worker process reports itself every few seconds: its lanes and what
-- it is running. A row not seen for a while is a process that is gone.
CREATE TABLE workers (
    id         text        PRIMARY KEY,
    host       text        NOT NULL,
    version    text        NOT NULL,
    lanes      jsonb       NOT NULL,
    running    jsonb       NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);

-- Jobs that ended dead, per lane and minute.
ALTER TABLE lane_minutes ADD COLUMN failed bigint NOT NULL DEFAULT 0;
