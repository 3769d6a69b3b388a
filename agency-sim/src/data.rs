//! The reservations of a simulated provider: their deterministic initial
//! state, the changes the simulator applies to them, and their wire form.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Initial start times are spread over this many days after the anchor.
pub const SPREAD_DAYS: i64 = 180;

/// Share of changes that cancel a confirmed reservation.
const CANCEL_SHARE: f64 = 0.03;
/// Share of changes that rewrite `details` (gate and seat, or room).
const DETAILS_SHARE: f64 = 0.22;

/// A reservation's status on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimStatus {
    Confirmed,
    Cancelled,
}

impl SimStatus {
    /// The status as the wire spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SimStatus::Confirmed => "confirmed",
            SimStatus::Cancelled => "cancelled",
        }
    }
}

/// One reservation as the simulator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReservation {
    pub reservation_number: String,
    pub status: SimStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Small provider data: `gate`, `seat` and `terminal` for a flight,
    /// `room` and `floor` for a stay.
    pub details: Value,
    /// Starts at 1; every change adds 1. The ETag is this number quoted.
    pub version: u64,
    /// When the current version came to be: [`initial_changed_at`] for the
    /// initial state, the wall-clock time of the change afterwards.
    pub changed_at: DateTime<Utc>,
}

impl SimReservation {
    /// The entity tag of the current version: the version in double quotes,
    /// as the `ETag` header carries it (`"3"`).
    pub fn etag(&self) -> String {
        etag_of(self.version)
    }

    /// The JSON object the wire protocol sends for this reservation: the
    /// body of a `GET` and the `reservation` of a batch item.
    pub fn to_wire(&self) -> Value {
        // Strings, an optional string and a JSON value: serializing cannot
        // fail, so the fallback is never taken.
        serde_json::to_value(self.wire()).unwrap_or(Value::Null)
    }

    /// The wire form, borrowed, for serializing many at once.
    pub(crate) fn wire(&self) -> Wire<'_> {
        Wire {
            reservation_number: &self.reservation_number,
            status: self.status.as_str(),
            starts_at: rfc3339(self.starts_at),
            ends_at: self.ends_at.map(rfc3339),
            details: &self.details,
            changed_at: rfc3339(self.changed_at),
        }
    }
}

/// The wire form of a reservation (see [`SimReservation::to_wire`]).
#[derive(Debug, Serialize)]
pub(crate) struct Wire<'a> {
    pub reservation_number: &'a str,
    pub status: &'static str,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub details: &'a Value,
    pub changed_at: String,
}

/// The entity tag of `version`: the number in double quotes.
pub fn etag_of(version: u64) -> String {
    format!("\"{version}\"")
}

/// Formats a time as RFC 3339 in UTC (`Z`), with as many fractional digits
/// as it has.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The reservation number of reservation `i` of `provider`: the provider's
/// name in upper case followed by `i` zero-padded to eight digits
/// (`reservation_number("skyways", 42)` is `SKYWAYS00000042`).
pub fn reservation_number(provider: &str, i: u64) -> String {
    format!("{}{i:08}", provider.to_uppercase())
}

/// The index of `number` among `provider`'s reservations: the inverse of
/// [`reservation_number`]. `None` if `number` is not one of its numbers in
/// the exact form that function writes (upper-case prefix, at least eight
/// digits, no extra leading zeros beyond the padding).
pub fn parse_reservation_number(provider: &str, number: &str) -> Option<u64> {
    let prefix_len = provider.len();
    if number.len() < prefix_len + 8 || !number.is_char_boundary(prefix_len) {
        return None;
    }
    let (prefix, digits) = number.split_at(prefix_len);
    if prefix != provider.to_uppercase() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u64 = digits.parse().ok()?;
    // Reject other spellings of the same index, such as extra zeros.
    (format!("{i:08}") == digits).then_some(i)
}

/// The `changed_at` of every reservation that has not changed yet: 30 days
/// before the anchor.
pub fn initial_changed_at(anchor: DateTime<Utc>) -> DateTime<Utc> {
    anchor - Duration::days(30)
}

/// Whether `provider` simulates a hotel chain (stays with a room) rather
/// than an airline (flights with a gate and seat): its name contains
/// `hotel`, `inn`, `stay` or `lodg`.
pub fn is_lodging(provider: &str) -> bool {
    let name = provider.to_lowercase();
    ["hotel", "inn", "stay", "lodg"].iter().any(|word| name.contains(word))
}

/// The initial state of reservation `i` of `provider`, laid out from
/// `anchor`: confirmed, version 1, changed at [`initial_changed_at`],
/// starting at a 5-minute boundary between one hour and [`SPREAD_DAYS`]
/// days after the anchor. A flight ends 1 to 12 hours after it starts, a
/// stay 1 to 7 days after.
///
/// Pure and cheap (a hash of the provider and index, no allocation beyond
/// the result), so a benchmark can seed a database with exactly the states
/// the simulator serves.
pub fn initial(anchor: DateTime<Utc>, provider: &str, i: u64) -> SimReservation {
    let mut h = Mix::new(provider, i);
    let slots = SPREAD_DAYS * 24 * 12;
    let starts_at = anchor + Duration::hours(1) + Duration::minutes(5 * h.below(slots as u64) as i64);
    let (ends_at, details) = if is_lodging(provider) {
        let nights = 1 + h.below(7) as i64;
        (starts_at + Duration::days(nights), room_details(&mut h))
    } else {
        let minutes = 60 + 15 * h.below(45) as i64;
        (starts_at + Duration::minutes(minutes), flight_details(&mut h, true))
    };
    SimReservation {
        reservation_number: reservation_number(provider, i),
        status: SimStatus::Confirmed,
        starts_at,
        ends_at: Some(ends_at),
        details,
        version: 1,
        changed_at: initial_changed_at(anchor),
    }
}

/// Applies one random change to `reservation`, stamped `now`: about 3 % of
/// changes cancel it (a cancelled one is moved instead), about 22 % rewrite
/// its details, and the rest move its start and end together by 15 to 180
/// minutes, earlier or later. The version goes up by one.
pub fn apply_change(provider: &str, reservation: &mut SimReservation, rng: &mut impl Rng, now: DateTime<Utc>) {
    let roll: f64 = rng.random();
    if roll < CANCEL_SHARE && reservation.status == SimStatus::Confirmed {
        reservation.status = SimStatus::Cancelled;
    } else if roll < CANCEL_SHARE + DETAILS_SHARE {
        let mut h = Mix(rng.random());
        if is_lodging(provider) {
            reservation.details = room_details(&mut h);
        } else {
            // A new gate and seat; the terminal stays.
            let terminal = reservation.details.get("terminal").cloned();
            let mut details = flight_details(&mut h, false);
            if let (Some(terminal), Value::Object(map)) = (terminal, &mut details) {
                map.insert("terminal".into(), terminal);
            }
            reservation.details = details;
        }
    } else {
        let minutes = rng.random_range(15..=180_i64);
        let shift = Duration::minutes(if rng.random_bool(0.5) { minutes } else { -minutes });
        reservation.starts_at += shift;
        reservation.ends_at = reservation.ends_at.map(|end| end + shift);
    }
    reservation.version += 1;
    reservation.changed_at = now;
}

fn flight_details(h: &mut Mix, with_terminal: bool) -> Value {
    let mut details = Map::new();
    let gate_letter = char::from(b'A' + h.below(6) as u8);
    details.insert("gate".into(), Value::String(format!("{gate_letter}{}", 1 + h.below(40))));
    let seat_letter = char::from(b'A' + h.below(6) as u8);
    details.insert("seat".into(), Value::String(format!("{}{seat_letter}", 1 + h.below(40))));
    if with_terminal {
        details.insert("terminal".into(), Value::String((1 + h.below(3)).to_string()));
    }
    Value::Object(details)
}

fn room_details(h: &mut Mix) -> Value {
    let floor = 1 + h.below(12);
    let mut details = Map::new();
    details.insert("room".into(), Value::String(format!("{floor}{:02}", 1 + h.below(40))));
    details.insert("floor".into(), Value::from(floor));
    Value::Object(details)
}

/// A small deterministic generator (SplitMix64) seeded from a provider
/// name and an index.
struct Mix(u64);

impl Mix {
    fn new(provider: &str, i: u64) -> Self {
        // FNV-1a over the name, then the index folded in.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in provider.bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Mix(h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rand::{rngs::SmallRng, SeedableRng};

    use super::*;

    fn anchor() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().expect("a valid date")
    }

    #[test]
    fn numbers_round_trip_and_reject_other_spellings() {
        assert_eq!(reservation_number("skyways", 42), "SKYWAYS00000042");
        assert_eq!(parse_reservation_number("skyways", "SKYWAYS00000042"), Some(42));
        assert_eq!(parse_reservation_number("skyways", &reservation_number("skyways", 123_456_789)), Some(123_456_789));
        assert_eq!(parse_reservation_number("skyways", "skyways00000042"), None);
        assert_eq!(parse_reservation_number("skyways", "SKYWAYS42"), None);
        assert_eq!(parse_reservation_number("skyways", "SKYWAYS000000042"), None);
        assert_eq!(parse_reservation_number("skyways", "SKYWAYS0000004x"), None);
        assert_eq!(parse_reservation_number("skyways", "GRANDHOTELS00000042"), None);
        assert_eq!(parse_reservation_number("skyways", "SKYWAYSé0000042"), None);
    }

    #[test]
    fn initial_is_deterministic_and_within_the_spread() {
        let a = initial(anchor(), "skyways", 7);
        assert_eq!(a, initial(anchor(), "skyways", 7));
        assert_ne!(a, initial(anchor(), "skyways", 8));
        for i in 0..2_000 {
            for provider in ["skyways", "grandhotels"] {
                let r = initial(anchor(), provider, i);
                assert_eq!(r.version, 1);
                assert_eq!(r.status, SimStatus::Confirmed);
                assert!(r.starts_at > anchor() && r.starts_at <= anchor() + Duration::days(SPREAD_DAYS + 1));
                let end = r.ends_at.expect("an end");
                let length = end - r.starts_at;
                if provider == "grandhotels" {
                    assert!(length >= Duration::days(1) && length <= Duration::days(7), "{length}");
                    assert!(r.details.get("room").is_some());
                } else {
                    assert!(length >= Duration::hours(1) && length <= Duration::hours(12), "{length}");
                    assert!(r.details.get("gate").is_some() && r.details.get("seat").is_some());
                }
            }
        }
    }

    #[test]
    fn initial_starts_spread_over_the_whole_range() {
        let days: std::collections::BTreeSet<i64> =
            (0..5_000).map(|i| (initial(anchor(), "skyways", i).starts_at - anchor()).num_days() / 30).collect();
        assert_eq!(days.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn wire_form_has_every_field() {
        let r = initial(anchor(), "skyways", 1);
        let wire = r.to_wire();
        assert_eq!(wire["reservation_number"], "SKYWAYS00000001");
        assert_eq!(wire["status"], "confirmed");
        let starts: DateTime<Utc> = wire["starts_at"].as_str().and_then(|s| s.parse().ok()).expect("a date");
        assert_eq!(starts, r.starts_at);
        assert_eq!(wire["changed_at"], "2029-12-02T00:00:00Z");
        assert!(wire["details"].is_object());
        assert_eq!(r.etag(), "\"1\"");
    }

    #[test]
    fn changes_bump_the_version_and_mostly_move_times() {
        let mut rng = SmallRng::seed_from_u64(3);
        let now = anchor() + Duration::days(2);
        let (mut moved, mut cancelled, mut details) = (0, 0, 0);
        for i in 0..2_000 {
            let before = initial(anchor(), "skyways", i);
            let mut after = before.clone();
            apply_change("skyways", &mut after, &mut rng, now);
            assert_eq!(after.version, 2);
            assert_eq!(after.changed_at, now);
            if after.status == SimStatus::Cancelled {
                cancelled += 1;
            } else if after.starts_at != before.starts_at {
                let shift = (after.starts_at - before.starts_at).num_minutes().abs();
                assert!((15..=180).contains(&shift), "{shift}");
                assert_eq!(
                    after.ends_at.zip(before.ends_at).map(|(a, b)| a - b),
                    Some(after.starts_at - before.starts_at)
                );
                moved += 1;
            } else {
                assert_ne!(after.details, before.details);
                assert_eq!(after.details["terminal"], before.details["terminal"]);
                details += 1;
            }
        }
        assert!(moved > 1_300 && moved < 1_600, "{moved}");
        assert!(cancelled > 20 && cancelled < 110, "{cancelled}");
        assert!(details > 300 && details < 600, "{details}");
    }
}
