-- Every change to a reservation, as it was seen: by the agency sweep
-- (`agency`), in a newer confirmation email (`email`), or by its owner
-- (`manual`). Written in the transaction that changes the reservation.
-- `changes` holds each changed field as {"field": {"from": …, "to": …}}.
-- `changed_at` is when the source says it happened, when it says so;
-- `detected_at` is when we saw it (their difference is the staleness).
CREATE TABLE reservation_changes (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text        NOT NULL,
    reservation_id uuid        NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    source         text        NOT NULL CHECK (source IN ('email', 'manual', 'agency')),
    changes        jsonb       NOT NULL,
    changed_at     timestamptz,
    detected_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservation_changes_reservation ON reservation_changes (reservation_id, id);

-- How many of a reservation's changes were the vendor's (`agency` or
-- `email`), kept beside its history in the same transaction, so that the
-- monthly vendor analytics read one month of reservations and no history.
ALTER TABLE reservations ADD COLUMN vendor_changes integer NOT NULL DEFAULT 0;

-- A tenant's reservations by when they start, across users: the monthly
-- vendor analytics read one month of a tenant through it.
CREATE INDEX reservations_tenant_starts ON reservations (tenant_id, starts_at);
