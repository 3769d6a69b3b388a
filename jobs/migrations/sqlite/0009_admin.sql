-- What the admin surfaces keep: the audit log, dashboard sessions and the
-- worker instances that are alive (see the PostgreSQL migration 0010).
-- Times are INTEGER milliseconds since the Unix epoch.

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    tenant_id      TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    subject_tenant TEXT,
    detail         TEXT    NOT NULL DEFAULT '{}',
    source_ip      TEXT,
    user_agent     TEXT
) STRICT;
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_subject ON audit_log (subject_tenant, id DESC) WHERE subject_tenant IS NOT NULL;

CREATE TABLE admin_sessions (
    id_hash    TEXT    PRIMARY KEY NOT NULL,
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

CREATE TABLE workers (
    id         TEXT    PRIMARY KEY NOT NULL,
    host       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    lanes      TEXT    NOT NULL,
    running    TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
) STRICT;
