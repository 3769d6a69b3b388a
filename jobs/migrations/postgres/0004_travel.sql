-- Reservations and the trips they are grouped into (see jobs/src/travel).
CREATE TABLE trips (
    id         uuid        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    name       text        NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trips_user ON trips (tenant_id, user_id, starts_at DESC, id DESC);

CREATE TABLE reservations (
    id                 uuid        PRIMARY KEY,
    tenant_id          text        NOT NULL,
    user_id            text        NOT NULL,
    type               text        NOT NULL
        CHECK (type IN ('flight', 'lodging', 'rental_car', 'train', 'bus', 'event', 'food')),
    reservation_number text        NOT NULL,
    provider           text        NOT NULL,
    status             text        NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz,
    trip_id            uuid        REFERENCES trips (id) ON DELETE SET NULL,
    source             text        NOT NULL CHECK (source IN ('email', 'manual', 'agency')),
    details            jsonb       NOT NULL DEFAULT '{}',
    city               text,
    country            text,
    origin             text,
    destination        text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- A user's reservations, latest first (the list, the trips' regrouping, and
-- the year report's aggregates).
CREATE INDEX reservations_user ON reservations (tenant_id, user_id, starts_at DESC, id DESC);
CREATE INDEX reservations_trip ON reservations (trip_id) WHERE trip_id IS NOT NULL;
