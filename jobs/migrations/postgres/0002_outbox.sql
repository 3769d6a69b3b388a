-- The notification outbox. An event row commits in the same transaction as
-- the job status it announces; publishers drain it to SNS (or the log) and
-- delete what was published. It is a transport, not a history.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    tenant_id   text        NOT NULL,
    event_type  text        NOT NULL,
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Set while a publisher holds the event; a lapsed lease means the
    -- publisher died, and the event goes out again (at least once).
    lease_until timestamptz,
    attempts    integer     NOT NULL DEFAULT 0
);
