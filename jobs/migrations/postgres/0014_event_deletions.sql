-- A user's request that their analytics events be deleted: their raw rows
-- go at once, in the same transaction as this row; the lake's files are
-- rewritten without them by an `events_erase` job, which records when.
CREATE TABLE event_deletions (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL,
    raw_deleted  bigint      NOT NULL,
    lake_rows    bigint,
    erased_at    timestamptz
);
CREATE INDEX event_deletions_pending ON event_deletions (tenant_id, requested_at) WHERE erased_at IS NULL;
