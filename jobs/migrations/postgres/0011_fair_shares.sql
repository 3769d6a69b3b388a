-- Fair shares: one tenant's backlog cannot starve another's.
--
-- A claim takes jobs in the order of their fair tag (`fair_at`), a
-- start-time fair queueing tag given at insert: a tenant's due jobs are
-- chained one microsecond apart, and the chain starts no earlier than the
-- lane's front (the smallest tag still waiting). So 20,000 jobs of one
-- tenant take 20 ms of tags, and a job that another tenant submits later
-- lands at the front of the lane, between them, instead of behind them.
-- A delayed job's tag is its `run_at` (it queues as if it arrived then).
-- The claim stays one index scan: the interleaving was paid for at insert.
ALTER TABLE job_queue ADD COLUMN tenant_id text, ADD COLUMN fair_at timestamptz;
UPDATE job_queue q SET tenant_id = j.tenant_id, fair_at = q.run_at FROM jobs j WHERE j.id = q.id;
-- A queue row without its job is garbage (nothing would ever run it).
DELETE FROM job_queue WHERE tenant_id IS NULL;
ALTER TABLE job_queue ALTER COLUMN tenant_id SET NOT NULL, ALTER COLUMN fair_at SET NOT NULL;

-- The claim: due jobs of one lane, highest priority first, then by fair
-- tag. run_at and tenant_id ride along so the claim's filters (due, tenant
-- not over its share, tenant not paused) are checked in the index.
DROP INDEX job_queue_claim;
CREATE INDEX job_queue_claim ON job_queue (lane, priority DESC, fair_at, id) INCLUDE (run_at, tenant_id)
    WHERE lease_until IS NULL AND NOT dead;
-- Leases: the reaper, in-flight counts, and each tenant's running jobs in
-- a lane (its share).
DROP INDEX job_queue_leases;
CREATE INDEX job_queue_leases ON job_queue (lane, tenant_id, lease_until) WHERE lease_until IS NOT NULL;
DROP INDEX job_queue_dead;
CREATE INDEX job_queue_dead ON job_queue (lane, tenant_id) WHERE dead;

-- Per tenant and lane: the last fair tag given to a due job (the end of the
-- tenant's chain), and the tenant admin's own pause of their jobs in the
-- lane (a lane's pause for everyone stays in `lanes`, for the platform role).
CREATE TABLE tenant_lanes (
    lane       text        NOT NULL,
    tenant_id  text        NOT NULL,
    fair_at    timestamptz,
    paused     boolean     NOT NULL DEFAULT false,
    paused_by  text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lane, tenant_id)
);
CREATE INDEX tenant_lanes_paused ON tenant_lanes (lane, tenant_id) WHERE paused;

-- Jobs finished and dead per lane, tenant and minute, so that a tenant's
-- admin reads their own throughput and the platform the sum. Rows counted
-- before this migration keep an empty tenant: they count for the platform
-- only.
ALTER TABLE lane_minutes ADD COLUMN tenant_id text NOT NULL DEFAULT '';
ALTER TABLE lane_minutes DROP CONSTRAINT lane_minutes_pkey;
ALTER TABLE lane_minutes ADD PRIMARY KEY (lane, minute, tenant_id);
ALTER TABLE lane_minutes ALTER COLUMN tenant_id DROP DEFAULT;

-- A tenant's agency changes by when they were seen: the tenant's view of
-- the sweeps (how many of its reservations each sweep changed, and how
-- stale those changes were).
CREATE INDEX reservation_changes_tenant_agency ON reservation_changes (tenant_id, detected_at)
    WHERE source = 'agency';

