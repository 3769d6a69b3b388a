-- Reservations and the trips they are grouped into (see jobs/src/travel).
-- Times are milliseconds since the epoch, as in the jobs table.
CREATE TABLE trips (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX trips_user ON trips (tenant_id, user_id, starts_at DESC, id DESC);

CREATE TABLE reservations (
    id                 TEXT    PRIMARY KEY,
    tenant_id          TEXT    NOT NULL,
    user_id            TEXT    NOT NULL,
    type               TEXT    NOT NULL
        CHECK (type IN ('flight', 'lodging', 'rental_car', 'train', 'bus', 'event', 'food')),
    reservation_number TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    starts_at          INTEGER NOT NULL,
    ends_at            INTEGER,
    trip_id            TEXT    REFERENCES trips (id) ON DELETE SET NULL,
    source             TEXT    NOT NULL CHECK (source IN ('email', 'manual', 'agency')),
    details            TEXT    NOT NULL DEFAULT '{}',
    city               TEXT,
    country            TEXT,
    origin             TEXT,
    destination        TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX reservations_user ON reservations (tenant_id, user_id, starts_at DESC, id DESC);
CREATE INDEX reservations_trip ON reservations (trip_id) WHERE trip_id IS NOT NULL;
