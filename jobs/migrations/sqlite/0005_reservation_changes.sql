-- Every change to a reservation (see the PostgreSQL migration of the same
-- name). Times are milliseconds since the epoch.
CREATE TABLE reservation_changes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT    NOT NULL,
    reservation_id TEXT    NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    source         TEXT    NOT NULL CHECK (source IN ('email', 'manual', 'agency')),
    changes        TEXT    NOT NULL,
    changed_at     INTEGER,
    detected_at    INTEGER NOT NULL
);
CREATE INDEX reservation_changes_reservation ON reservation_changes (reservation_id, id);

ALTER TABLE reservations ADD COLUMN vendor_changes INTEGER NOT NULL DEFAULT 0;

CREATE INDEX reservations_tenant_starts ON reservations (tenant_id, starts_at);
