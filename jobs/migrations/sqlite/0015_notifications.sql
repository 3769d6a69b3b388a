-- What reaches a traveler (see the PostgreSQL migration of the same name).
-- Times are milliseconds since the epoch; JSON is text.
ALTER TABLE users ADD COLUMN notification_prefs TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN quiet_start INTEGER CHECK (quiet_start BETWEEN 0 AND 1439);
ALTER TABLE users ADD COLUMN quiet_end   INTEGER CHECK (quiet_end BETWEEN 0 AND 1439);

CREATE TABLE devices (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    platform     TEXT    NOT NULL CHECK (platform IN ('ios', 'android')),
    token        TEXT    NOT NULL,
    app_version  TEXT,
    endpoint_arn TEXT,
    disabled_at  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, platform, token)
);
CREATE INDEX devices_user ON devices (tenant_id, user_id, updated_at DESC);

CREATE TABLE device_endpoints_gone (
    endpoint_arn TEXT    PRIMARY KEY,
    gone_at      INTEGER NOT NULL
);

CREATE TABLE notifications (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    event_id   INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    urgent     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deliver_at INTEGER NOT NULL,
    read_at    INTEGER,
    UNIQUE (event_id, tenant_id, user_id)
);
CREATE INDEX notifications_inbox ON notifications (tenant_id, user_id, deliver_at DESC, id DESC);

CREATE TABLE push_deliveries (
    notification_id TEXT    NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    device_id       TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id       TEXT    NOT NULL,
    deliver_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    sent_at         INTEGER,
    message_id      TEXT,
    error           TEXT,
    PRIMARY KEY (notification_id, device_id)
);
CREATE INDEX push_deliveries_due ON push_deliveries (deliver_at) WHERE state = 'pending';
CREATE INDEX push_deliveries_device ON push_deliveries (device_id);
