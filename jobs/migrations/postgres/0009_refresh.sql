-- The reservation sweep (see jobs/src/travel/refresh and the
-- reservation_refresh kind).
--
-- `shard_key` is the last 16 bits of the id, which are random in UUIDv4 and
-- UUIDv7 alike: shard i of n is the key range [i*65536/n, (i+1)*65536/n),
-- the same reservations on every sweep, and as even as the ids are random.
-- The active set is what the sweep checks: confirmed, and not `ended` (the
-- sweep sets `ended` once a reservation's trip is over; a write that moves
-- its dates clears it). `version` counts the reservation's changes;
-- `agency_etag` and `agency_hash` are the entity tag and the content hash of
-- what its agency said last, so an unchanged answer writes nothing.
-- `checked_at` is when the agency's answer was last written here; the
-- checks that found nothing new are recorded per shard, in sweep_shards.
ALTER TABLE reservations
    ADD COLUMN shard_key   integer GENERATED ALWAYS AS (('x' || right(id::text, 4))::bit(16)::integer) STORED,
    ADD COLUMN version     bigint  NOT NULL DEFAULT 1,
    ADD COLUMN ended       boolean NOT NULL DEFAULT false,
    ADD COLUMN agency_etag text,
    ADD COLUMN agency_hash bigint,
    ADD COLUMN checked_at  timestamptz;

CREATE INDEX reservations_sweep ON reservations (shard_key, id) WHERE status = 'confirmed' AND NOT ended;

-- One row per sweep. `slot` is the start of the sweep's interval: a unique
-- key, so a restarted planner or a new leader never starts the same sweep
-- twice.
CREATE TABLE sweeps (
    id         uuid        PRIMARY KEY,
    slot       timestamptz NOT NULL UNIQUE,
    started_at timestamptz NOT NULL DEFAULT now(),
    active     bigint      NOT NULL,
    shards     integer     NOT NULL,
    enqueued   integer     NOT NULL,
    -- Shards not started because their previous run was still going.
    skipped    integer     NOT NULL
);

-- One row per shard a sweep enqueued, updated by its job as each page of
-- it commits (in that page's transaction). `staleness` is an HdrHistogram
-- (V2 serialisation, base64) of the staleness of the changes it found, in
-- milliseconds: merged across shards for the sweep's percentiles.
CREATE TABLE sweep_shards (
    sweep_id     uuid        NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    shard        integer     NOT NULL,
    key_lo       integer     NOT NULL,
    key_hi       integer     NOT NULL,
    job_id       uuid        NOT NULL,
    checked      bigint      NOT NULL DEFAULT 0,
    changed      bigint      NOT NULL DEFAULT 0,
    not_modified bigint      NOT NULL DEFAULT 0,
    not_found    bigint      NOT NULL DEFAULT 0,
    invalid      bigint      NOT NULL DEFAULT 0,
    failed       bigint      NOT NULL DEFAULT 0,
    no_agency    bigint      NOT NULL DEFAULT 0,
    ended        bigint      NOT NULL DEFAULT 0,
    staleness    text,
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text,
    PRIMARY KEY (sweep_id, shard)
);
CREATE INDEX sweep_shards_job ON sweep_shards (job_id);
CREATE INDEX sweep_shards_open ON sweep_shards (sweep_id) WHERE finished_at IS NULL;
