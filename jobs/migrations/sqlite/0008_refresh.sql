-- The reservation sweep; see the PostgreSQL migration of the same name.
-- Ids are text here: the shard key is the value of their last four hex
-- digits. Times are milliseconds since the epoch.
ALTER TABLE reservations ADD COLUMN shard_key INTEGER GENERATED ALWAYS AS (
    (instr('0123456789abcdef', lower(substr(id, 33, 1))) - 1) * 4096
  + (instr('0123456789abcdef', lower(substr(id, 34, 1))) - 1) * 256
  + (instr('0123456789abcdef', lower(substr(id, 35, 1))) - 1) * 16
  + (instr('0123456789abcdef', lower(substr(id, 36, 1))) - 1)) VIRTUAL;
ALTER TABLE reservations ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE reservations ADD COLUMN ended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN agency_etag TEXT;
ALTER TABLE reservations ADD COLUMN agency_hash INTEGER;
ALTER TABLE reservations ADD COLUMN checked_at INTEGER;

CREATE INDEX reservations_sweep ON reservations (shard_key, id) WHERE status = 'confirmed' AND ended = 0;

CREATE TABLE sweeps (
    id         TEXT    PRIMARY KEY,
    slot       INTEGER NOT NULL UNIQUE,
    started_at INTEGER NOT NULL,
    active     INTEGER NOT NULL,
    shards     INTEGER NOT NULL,
    enqueued   INTEGER NOT NULL,
    skipped    INTEGER NOT NULL
);

CREATE TABLE sweep_shards (
    sweep_id     TEXT    NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    shard        INTEGER NOT NULL,
    key_lo       INTEGER NOT NULL,
    key_hi       INTEGER NOT NULL,
    job_id       TEXT    NOT NULL,
    checked      INTEGER NOT NULL DEFAULT 0,
    changed      INTEGER NOT NULL DEFAULT 0,
    not_modified INTEGER NOT NULL DEFAULT 0,
    not_found    INTEGER NOT NULL DEFAULT 0,
    invalid      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    no_agency    INTEGER NOT NULL DEFAULT 0,
    ended        INTEGER NOT NULL DEFAULT 0,
    staleness    TEXT,
    started_at   INTEGER,
    finished_at  INTEGER,
    error        TEXT,
    PRIMARY KEY (sweep_id, shard)
);
CREATE INDEX sweep_shards_job ON sweep_shards (job_id);
CREATE INDEX sweep_shards_open ON sweep_shards (sweep_id) WHERE finished_at IS NULL;
