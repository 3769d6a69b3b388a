-- Inboxes users connect (see the PostgreSQL migration of the same name).
-- Times are milliseconds since the epoch.
CREATE TABLE mail_accounts (
    id               TEXT    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    imap_host        TEXT    NOT NULL,
    imap_port        INTEGER NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
    tls              TEXT    NOT NULL CHECK (tls IN ('tls', 'starttls', 'none')),
    username         TEXT    NOT NULL,
    auth             TEXT    NOT NULL CHECK (auth IN ('password', 'oauth2')),
    allowed_senders  TEXT    NOT NULL,
    dkim             TEXT    NOT NULL CHECK (dkim IN ('off', 'if_present', 'required')),
    secret_key_id    TEXT    NOT NULL,
    secret_data_key  BLOB    NOT NULL,
    secret_nonce     BLOB    NOT NULL,
    secret           BLOB    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_attention')),
    last_error       TEXT,
    uid_validity     INTEGER,
    last_uid         INTEGER NOT NULL DEFAULT 0,
    messages_seen    INTEGER NOT NULL DEFAULT 0,
    reservations_found INTEGER NOT NULL DEFAULT 0,
    next_poll_at     INTEGER NOT NULL,
    idle_polls       INTEGER NOT NULL DEFAULT 0,
    last_polled_at   INTEGER,
    poll_job_id      TEXT,
    poll_attempt     INTEGER,
    poll_lease_until INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX mail_accounts_user ON mail_accounts (tenant_id, user_id, created_at, id);
CREATE INDEX mail_accounts_due ON mail_accounts (next_poll_at) WHERE status = 'active';

ALTER TABLE reservations ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX reservations_dedupe ON reservations (tenant_id, user_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
ALTER TABLE reservations ADD COLUMN trip_pinned INTEGER NOT NULL DEFAULT 0;
