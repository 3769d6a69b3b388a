-- Inboxes users connect, and what email_poll needs to sync them (see
-- jobs/src/travel/mail.rs).
--
-- The credential (a password, or an OAuth2 client and refresh token) is
-- sealed with AES-256-GCM under a data key of its own; the data key is
-- wrapped by the key-encryption key named by `secret_key_id`. Both
-- encryptions bind the tenant, the user and the account id as associated
-- data, so a sealed secret copied to another row does not open.
CREATE TABLE mail_accounts (
    id               uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    user_id          text        NOT NULL,
    imap_host        text        NOT NULL,
    imap_port        integer     NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
    tls              text        NOT NULL CHECK (tls IN ('tls', 'starttls', 'none')),
    username         text        NOT NULL,
    auth             text        NOT NULL CHECK (auth IN ('password', 'oauth2')),
    allowed_senders  jsonb       NOT NULL,
    dkim             text        NOT NULL CHECK (dkim IN ('off', 'if_present', 'required')),
    secret_key_id    text        NOT NULL,
    secret_data_key  bytea       NOT NULL,
    secret_nonce     bytea       NOT NULL,
    secret           bytea       NOT NULL,
    -- `active`, or `needs_attention` after a permanent failure (a rejected
    -- password): the scheduler stops polling it until the user fixes it.
    status           text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_attention')),
    last_error       text,
    -- The sync position: the mailbox's UIDVALIDITY and the highest UID seen.
    uid_validity     bigint,
    last_uid         bigint      NOT NULL DEFAULT 0,
    messages_seen    bigint      NOT NULL DEFAULT 0,
    reservations_found bigint    NOT NULL DEFAULT 0,
    -- Scheduling: when the next poll is due, and how many polls in a row
    -- found nothing (the idle back-off).
    next_poll_at     timestamptz NOT NULL DEFAULT now(),
    idle_polls       integer     NOT NULL DEFAULT 0,
    last_polled_at   timestamptz,
    -- The poll running now, if any: one attempt of one email_poll job holds
    -- the account until `poll_lease_until`. Its writes are fenced on it.
    poll_job_id      uuid,
    poll_attempt     integer,
    poll_lease_until timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_accounts_user ON mail_accounts (tenant_id, user_id, created_at, id);
CREATE INDEX mail_accounts_due ON mail_accounts (next_poll_at) WHERE status = 'active';

-- The identity of a reservation found in email: provider, reservation
-- number and item (a flight leg, a stay, a rental, an event). Seeing it
-- again updates the row.
ALTER TABLE reservations ADD COLUMN dedupe_key text;
CREATE UNIQUE INDEX reservations_dedupe ON reservations (tenant_id, user_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
-- The user put the reservation in its trip by hand: regrouping keeps it there.
ALTER TABLE reservations ADD COLUMN trip_pinned boolean NOT NULL DEFAULT false;
