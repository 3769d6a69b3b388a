-- What reaches a traveler (see jobs/src/inbox): their preferences, their
-- push devices, and their notifications.

-- Preferences on the user's row: which notification types they want
-- (`{"video.ready": false}`; a type not named is wanted), and quiet hours
-- as minutes after local midnight (both set, or neither).
ALTER TABLE users ADD COLUMN notification_prefs jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE users ADD COLUMN quiet_start smallint CHECK (quiet_start BETWEEN 0 AND 1439);
ALTER TABLE users ADD COLUMN quiet_end   smallint CHECK (quiet_end BETWEEN 0 AND 1439);

-- A phone that receives pushes. A push token is one device in its tenant:
-- registered again (by its user, or by whoever signs in on that phone
-- next), it is the same row. `endpoint_arn` is its SNS platform endpoint,
-- made by the notifier on first use; `disabled_at` is set when the push
-- service says the token is dead.
CREATE TABLE devices (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    platform     text        NOT NULL CHECK (platform IN ('ios', 'android')),
    token        text        NOT NULL,
    app_version  text,
    endpoint_arn text,
    disabled_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, platform, token)
);
CREATE INDEX devices_user ON devices (tenant_id, user_id, updated_at DESC);

-- SNS endpoints of devices that are gone (deleted, or moved to another
-- platform application), for the notifier to delete at SNS.
CREATE TABLE device_endpoints_gone (
    endpoint_arn text        PRIMARY KEY,
    gone_at      timestamptz NOT NULL DEFAULT now()
);

-- The in-app inbox: one row per user per outbox event that concerns them.
-- `event_id` is the outbox row, so an event drained twice (a publisher that
-- died after writing, before deleting) is one notification. It is visible,
-- and pushed, from `deliver_at`: later than `created_at` when quiet hours
-- hold it.
CREATE TABLE notifications (
    id         uuid        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    event_id   bigint      NOT NULL,
    type       text        NOT NULL,
    title      text        NOT NULL,
    body       text        NOT NULL,
    data       jsonb       NOT NULL,
    urgent     boolean     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deliver_at timestamptz NOT NULL,
    read_at    timestamptz,
    UNIQUE (event_id, tenant_id, user_id)
);
CREATE INDEX notifications_inbox ON notifications (tenant_id, user_id, deliver_at DESC, id DESC);

-- One push of one notification to one device: the key makes it once per
-- device, however often the event is drained. Claimed under a lease like
-- the outbox; `sent` keeps SNS's message id.
CREATE TABLE push_deliveries (
    notification_id uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    device_id       uuid        NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id       text        NOT NULL,
    deliver_at      timestamptz NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'sent', 'dropped')),
    attempts        integer     NOT NULL DEFAULT 0,
    lease_until     timestamptz,
    sent_at         timestamptz,
    message_id      text,
    error           text,
    PRIMARY KEY (notification_id, device_id)
);
CREATE INDEX push_deliveries_due ON push_deliveries (deliver_at) WHERE state = 'pending';
CREATE INDEX push_deliveries_device ON push_deliveries (device_id);
