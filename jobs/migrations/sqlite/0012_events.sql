-- Analytics events, their idempotent batches, the tenants' catalogues, the
-- lake's exported partitions and the tenants' pseudonymisation keys (see the
-- PostgreSQL migration of the same name). Times are milliseconds since the
-- epoch.
CREATE TABLE events (
    id                 TEXT    PRIMARY KEY,
    tenant_id          TEXT    NOT NULL,
    user_id            TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    known              INTEGER NOT NULL,
    occurred_at        INTEGER NOT NULL,
    received_at        INTEGER NOT NULL,
    received_hour      INTEGER NOT NULL,
    properties         TEXT    NOT NULL,
    session_id         TEXT,
    device_platform    TEXT,
    device_app_version TEXT,
    device_os_version  TEXT,
    device_model       TEXT
);
CREATE INDEX events_export ON events (tenant_id, received_hour, id);
CREATE INDEX events_hours ON events (received_hour, tenant_id);
CREATE INDEX events_user ON events (tenant_id, user_id);

CREATE TABLE event_batches (
    tenant_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    accepted        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, idempotency_key)
);
CREATE INDEX event_batches_age ON event_batches (created_at);

CREATE TABLE event_catalogues (
    tenant_id  TEXT    PRIMARY KEY,
    catalogue  TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE lake_partitions (
    tenant_id   TEXT    NOT NULL,
    hour        INTEGER NOT NULL,
    files       INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    manifest    TEXT    NOT NULL,
    exported_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, hour)
);

CREATE TABLE lake_keys (
    tenant_id  TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    data_key   BLOB NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
