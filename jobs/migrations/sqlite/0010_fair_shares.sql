-- Fair shares (see the PostgreSQL migration 0011): a claim takes due jobs by
-- priority, then by their fair tag, so that tenants interleave; and never
-- more of one tenant's jobs than its cap. `fair_at` is in MICROseconds since
-- the Unix epoch (a tenant's due jobs are chained one microsecond apart).
ALTER TABLE jobs ADD COLUMN fair_at INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET fair_at = run_at * 1000;

DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (lane, priority DESC, fair_at, id) WHERE status = 'queued';
-- Each tenant's running jobs in a lane (its share).
CREATE INDEX jobs_running_tenant ON jobs (lane, tenant_id) WHERE status = 'running';

CREATE TABLE tenant_lanes (
    lane       TEXT    NOT NULL,
    tenant_id  TEXT    NOT NULL,
    fair_at    INTEGER,
    paused     INTEGER NOT NULL DEFAULT 0,
    paused_by  TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (lane, tenant_id)
) STRICT;

CREATE INDEX reservation_changes_tenant_agency ON reservation_changes (tenant_id, detected_at)
    WHERE source = 'agency';
