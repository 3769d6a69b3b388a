-- Where a reservation starts and ends, in time (see jobs/src/travel/zones.rs):
-- an IANA zone name, or the offset its email gave when the place is unknown.
-- Rows from before are read with their place's zones.
ALTER TABLE reservations ADD COLUMN start_zone text, ADD COLUMN end_zone text;
