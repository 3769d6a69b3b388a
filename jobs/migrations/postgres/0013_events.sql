-- Analytics events from the apps (POST /v1/events), kept raw until their
-- hour is exported to the data lake and the raw window has passed.
--
-- `received_hour` is the hour the API stored the event in (its partition in
-- the lake); an export reads one tenant's hour in id order. `known` is false
-- for an event the tenant's catalogue does not name, accepted into the
-- `unknown` bucket because the tenant chose so.
CREATE TABLE events (
    id                 uuid        PRIMARY KEY,
    tenant_id          text        NOT NULL,
    user_id            text        NOT NULL,
    name               text        NOT NULL,
    known              boolean     NOT NULL,
    occurred_at        timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    received_hour      timestamptz NOT NULL,
    properties         jsonb       NOT NULL,
    session_id         text,
    device_platform    text,
    device_app_version text,
    device_os_version  text,
    device_model       text
);
CREATE INDEX events_export ON events (tenant_id, received_hour, id);
-- The scheduler's question: which tenants have events in an hour.
CREATE INDEX events_hours ON events (received_hour, tenant_id);
-- A user's deletion request.
CREATE INDEX events_user ON events (tenant_id, user_id);

-- A batch sent with an Idempotency-Key: a retry of the same batch lands
-- nothing twice, the same key with another batch is a 409.
CREATE TABLE event_batches (
    tenant_id       text        NOT NULL,
    user_id         text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    accepted        integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, idempotency_key)
);
CREATE INDEX event_batches_age ON event_batches (created_at);

-- A tenant's event catalogue, when it changed the default one.
CREATE TABLE event_catalogues (
    tenant_id  text        PRIMARY KEY,
    catalogue  jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One exported hour of a tenant's events in the lake: its files, counts and
-- manifest. A re-run replaces the row with its own.
CREATE TABLE lake_partitions (
    tenant_id   text        NOT NULL,
    hour        timestamptz NOT NULL,
    files       integer     NOT NULL,
    events      bigint      NOT NULL,
    bytes       bigint      NOT NULL,
    manifest    jsonb       NOT NULL,
    exported_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, hour)
);

-- Each tenant's pseudonymisation key, sealed by the key-encryption keys
-- (envelope encryption, as mail credentials are).
CREATE TABLE lake_keys (
    tenant_id  text PRIMARY KEY,
    key_id     text NOT NULL,
    data_key   bytea NOT NULL,
    nonce      bytea NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL
);
