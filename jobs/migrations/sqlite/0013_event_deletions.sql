-- A user's request that their analytics events be deleted (see the
-- PostgreSQL migration of the same name). Times are milliseconds.
CREATE TABLE event_deletions (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    requested_at INTEGER NOT NULL,
    raw_deleted  INTEGER NOT NULL,
    lake_rows    INTEGER,
    erased_at    INTEGER
);
CREATE INDEX event_deletions_pending ON event_deletions (tenant_id, requested_at) WHERE erased_at IS NULL;
