//! JSON-LD-shaped values to [`Found`] reservations: finding the reservation
//! objects, reading their fields by kind, building the dedupe key, and
//! merging repeats. Both readers (JSON-LD and microdata) end here, so the
//! same reservation gives the same result whatever its markup.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use crate::schema::{at, get, kind_of, name_of, text};
use crate::time::{self, When};
use crate::vendors::{canonical_airline, canonical_provider};
use crate::{Found, Kind, Status, MAX_DEPTH, MAX_RESERVATIONS};

/// Collects the reservations of one call, merging those with the same key.
pub(crate) struct Collector {
    sent: DateTime<FixedOffset>,
    found: Vec<Found>,
    by_key: HashMap<String, usize>,
    /// Reservation legs looked at, kept or not: bounds the work of a call.
    seen: usize,
}

impl Collector {
    pub(crate) fn new(sent: DateTime<FixedOffset>) -> Self {
        Collector { sent, found: Vec::new(), by_key: HashMap::new(), seen: 0 }
    }

    /// True once [`MAX_RESERVATIONS`] reservations have been looked at.
    pub(crate) fn is_full(&self) -> bool {
        self.seen >= MAX_RESERVATIONS
    }

    /// Reads every reservation in one document: the value itself, the
    /// elements of arrays (nested too) and the nodes of `@graph`, to
    /// [`MAX_DEPTH`] levels. Other objects are not searched.
    pub(crate) fn add_document(&mut self, value: &Value) {
        self.walk(value, 0);
    }

    fn walk(&mut self, value: &Value, depth: usize) {
        if depth > MAX_DEPTH || self.is_full() {
            return;
        }
        match value {
            Value::Array(items) => {
                for item in items {
                    if self.is_full() {
                        return;
                    }
                    self.walk(item, depth + 1);
                }
            }
            Value::Object(obj) => {
                if let Some(kind) = kind_of(obj) {
                    self.add_reservation(value, obj, kind);
                }
                if let Some(graph) = obj.get("@graph") {
                    self.walk(graph, depth + 1);
                }
            }
            _ => {}
        }
    }

    /// One reservation object: one [`Found`] per element of an array
    /// `reservationFor` (the legs of a multi-leg booking), else one.
    fn add_reservation(&mut self, res: &Value, obj: &Map<String, Value>, kind: Kind) {
        match obj.get("reservationFor") {
            Some(Value::Array(legs)) if legs.iter().any(|l| !l.is_null()) => {
                for leg in legs.iter().filter(|l| !l.is_null()) {
                    if self.is_full() {
                        return;
                    }
                    self.seen += 1;
                    if let Some(found) = build(res, kind, Some(leg), true, &self.sent) {
                        self.push(found);
                    }
                }
            }
            leg => {
                self.seen += 1;
                let leg = leg.filter(|l| !l.is_null() && !l.is_array());
                if let Some(found) = build(res, kind, leg, false, &self.sent) {
                    self.push(found);
                }
            }
        }
    }

    fn push(&mut self, found: Found) {
        match self.by_key.get(&found.key) {
            Some(&i) => {
                if let Some(existing) = self.found.get_mut(i) {
                    merge(existing, found);
                }
            }
            None => {
                self.by_key.insert(found.key.clone(), self.found.len());
                self.found.push(found);
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<Found> {
        self.found
    }
}

/// Merges a later sighting of the same reservation: its non-empty fields
/// win, and its details' top-level properties replace the earlier ones
/// (blank ones do not).
fn merge(into: &mut Found, later: Found) {
    if !later.reservation_number.is_empty() {
        into.reservation_number = later.reservation_number;
    }
    if !later.provider.is_empty() {
        into.provider = later.provider;
    }
    into.status = later.status;
    into.starts_at = later.starts_at;
    into.starts_offset = later.starts_offset;
    for (slot, value) in [
        (&mut into.city, later.city),
        (&mut into.country, later.country),
        (&mut into.origin, later.origin),
        (&mut into.destination, later.destination),
    ] {
        if value.is_some() {
            *slot = value;
        }
    }
    if later.ends_at.is_some() {
        into.ends_at = later.ends_at;
        into.ends_offset = later.ends_offset;
    }
    match (&mut into.details, later.details) {
        (Value::Object(old), Value::Object(new)) => {
            for (k, v) in new {
                if !is_blank(&v) {
                    old.insert(k, v);
                }
            }
        }
        (old, new) => {
            if !is_blank(&new) {
                *old = new;
            }
        }
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// One reservation (one leg of it) to a [`Found`]; `None` without a
/// parseable start. `res` is the reservation object; `leg` its
/// `reservationFor` (one element of it when `split_legs`).
fn build(
    res: &Value,
    kind: Kind,
    leg: Option<&Value>,
    split_legs: bool,
    sent: &DateTime<FixedOffset>,
) -> Option<Found> {
    let res = Some(res);
    let when = |base: Option<&Value>, keys: &[&str]| -> Option<When> {
        keys.iter().find_map(|k| text(get(base, k)).and_then(|t| time::parse(&t, sent)))
    };

    let (start, end) = match kind {
        Kind::Flight | Kind::Train | Kind::Bus => (when(leg, &["departureTime"]), when(leg, &["arrivalTime"])),
        Kind::Lodging => (when(res, &["checkinTime", "checkinDate"]), when(res, &["checkoutTime", "checkoutDate"])),
        Kind::RentalCar => (when(res, &["pickupTime"]), when(res, &["dropoffTime"])),
        Kind::Event => (when(leg, &["startDate"]), when(leg, &["endDate"])),
        Kind::Food => (when(res, &["startTime", "startDate"]), when(res, &["endTime", "endDate"])),
    };
    let start = start?;

    let reservation_number = text(get(res, "reservationNumber"))
        .or_else(|| text(get(res, "reservationId")))
        .or_else(|| text(at(res, &["reservedTicket", "ticketNumber"])))
        .map(|t| t.into_owned())
        .unwrap_or_default();

    let provider = provider(kind, res, leg)
        .map(|p| {
            let canonical = if kind == Kind::Flight { canonical_airline(&p) } else { canonical_provider(&p) };
            canonical.into_owned()
        })
        .unwrap_or_default();

    let (origin, destination) = if kind == Kind::Flight {
        (iata(at(leg, &["departureAirport", "iataCode"])), iata(at(leg, &["arrivalAirport", "iataCode"])))
    } else {
        (None, None)
    };

    let address = match kind {
        Kind::Flight => at(leg, &["arrivalAirport", "address"]),
        Kind::Lodging | Kind::Food => get(leg, "address"),
        Kind::RentalCar => at(res, &["pickupLocation", "address"]),
        Kind::Train => at(leg, &["arrivalStation", "address"]),
        Kind::Bus => at(leg, &["arrivalBusStop", "address"]),
        Kind::Event => at(leg, &["location", "address"]),
    }
    // A plain-text address gives neither city nor country.
    .filter(|a| a.is_object());
    let city = text(get(address, "addressLocality")).map(|t| t.into_owned());
    let country = country(get(address, "addressCountry"));

    let key = Key { kind, leg, provider: &provider, number: &reservation_number, start: &start }
        .build(origin.as_deref(), destination.as_deref());

    Some(Found {
        kind,
        status: status(get(res, "reservationStatus")),
        starts_at: start.utc,
        ends_at: end.map(|e| e.utc),
        starts_offset: start.offset,
        ends_offset: end.and_then(|e| e.offset),
        details: details(res, leg, split_legs),
        reservation_number,
        provider,
        city,
        country,
        origin,
        destination,
        key,
    })
}

/// The vendor, by kind (see the crate documentation for the order).
fn provider<'a>(kind: Kind, res: Option<&'a Value>, leg: Option<&'a Value>) -> Option<std::borrow::Cow<'a, str>> {
    let res_provider = || name_of(get(res, "provider"));
    let broker = || name_of(get(res, "broker"));
    match kind {
        Kind::Flight => name_of(get(leg, "airline"))
            .or_else(|| text(at(leg, &["airline", "iataCode"])))
            .or_else(res_provider)
            .or_else(broker),
        Kind::Lodging | Kind::Food => name_of(leg),
        Kind::RentalCar => name_of(get(leg, "rentalCompany"))
            .or_else(res_provider)
            .or_else(|| name_of(get(leg, "brand")))
            .or_else(broker),
        // `trainCompany` and `busCompany` are Google's names for the operator.
        Kind::Train => name_of(get(leg, "provider"))
            .or_else(|| name_of(get(leg, "trainCompany")))
            .or_else(res_provider)
            .or_else(broker),
        Kind::Bus => name_of(get(leg, "provider"))
            .or_else(|| name_of(get(leg, "busCompany")))
            .or_else(res_provider)
            .or_else(broker),
        Kind::Event => res_provider()
            .or_else(broker)
            .or_else(|| name_of(get(leg, "organizer")))
            .or_else(|| name_of(get(leg, "location"))),
    }
}

/// `cancelled` when the status ends with `ReservationCancelled` or is
/// `Cancelled` (any case, schema.org URL or not); else `confirmed`. A
/// JSON-LD enumeration object (`{"@id": …}`) counts by its `@id`.
fn status(value: Option<&Value>) -> Status {
    let Some(value) = value else { return Status::Confirmed };
    let Some(raw) = text(Some(value)).or_else(|| text(get(Some(value), "@id"))).or_else(|| name_of(Some(value))) else {
        return Status::Confirmed;
    };
    let name = crate::schema::strip_prefix(&raw);
    let lower = name.to_ascii_lowercase();
    if lower == "cancelled" || lower.ends_with("reservationcancelled") {
        Status::Cancelled
    } else {
        Status::Confirmed
    }
}

/// An IATA airport code: three ASCII letters, upper-cased.
fn iata(value: Option<&Value>) -> Option<String> {
    let code = text(value)?;
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| code.to_ascii_uppercase())
}

/// An ISO 3166-1 alpha-2 country: a two-letter code, or a `Country` whose
/// name is one; upper-cased.
fn country(value: Option<&Value>) -> Option<String> {
    let value = value?;
    let code = if value.is_object() { text(get(Some(value), "name")) } else { text(Some(value)) }?;
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| code.to_ascii_uppercase())
}

/// The reservation as a JSON-LD-style object, `@type`s without URL
/// prefixes; for one leg of a multi-leg booking, with that leg alone as
/// `reservationFor`.
fn details(res: Option<&Value>, leg: Option<&Value>, split_legs: bool) -> Value {
    let mut details = match (res, leg) {
        (Some(Value::Object(obj)), Some(leg)) if split_legs => {
            let mut copy = Map::new();
            for (k, v) in obj {
                let v = if k == "reservationFor" { leg.clone() } else { v.clone() };
                copy.insert(k.clone(), v);
            }
            Value::Object(copy)
        }
        (Some(res), _) => res.clone(),
        (None, _) => Value::Null,
    };
    crate::schema::deprefix_types(&mut details, MAX_DEPTH);
    details
}

/// The parts of the dedupe key.
struct Key<'a> {
    kind: Kind,
    leg: Option<&'a Value>,
    provider: &'a str,
    number: &'a str,
    start: &'a When,
}

impl Key<'_> {
    /// `kind|provider|number|item`: provider lower-case alphanumerics (for
    /// flights the airline code when known), number upper-case without
    /// spaces, item by kind (see the crate documentation). Dates are the
    /// start's date as written, before conversion to UTC.
    fn build(&self, origin: Option<&str>, destination: Option<&str>) -> String {
        let date = self.start.local.format("%Y-%m-%d").to_string();
        let leg = self.leg;
        let mut provider = normalise(self.provider);
        let item = match self.kind {
            Kind::Flight => {
                let number = text(get(leg, "flightNumber"));
                let (prefix, digits) = number.as_deref().map(split_flight_number).unwrap_or_default();
                let mut airline = normalise(&text(at(leg, &["airline", "iataCode"])).unwrap_or_default());
                if airline.is_empty() {
                    airline = normalise(prefix);
                }
                if !airline.is_empty() {
                    provider.clone_from(&airline);
                }
                if digits.is_empty() {
                    format!("{}-{}@{date}", origin.unwrap_or(""), destination.unwrap_or(""))
                } else {
                    format!("{airline}{digits}@{date}")
                }
            }
            Kind::Train | Kind::Bus => {
                let (number_key, stop_key) = if self.kind == Kind::Train {
                    ("trainNumber", "departureStation")
                } else {
                    ("busNumber", "departureBusStop")
                };
                let number = normalise(&text(get(leg, number_key)).unwrap_or_default());
                if number.is_empty() {
                    format!("{}@{date}", normalise(&name_of(get(leg, stop_key)).unwrap_or_default()))
                } else {
                    format!("{number}@{date}")
                }
            }
            Kind::Event => format!("{}@{date}", normalise(&name_of(leg).unwrap_or_default())),
            // One stay, rental or table per reservation number; without a
            // number, the start date tells reservations apart.
            Kind::Lodging | Kind::RentalCar | Kind::Food => {
                if self.number.is_empty() {
                    date
                } else {
                    String::new()
                }
            }
        };
        let number: String = self.number.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect();
        format!("{}|{provider}|{number}|{item}", self.kind.as_str())
    }
}

/// Lower-case alphanumerics only: `"Deutsche Bahn"` and `"deutsche-bahn"`
/// are one provider.
fn normalise(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// `"UA 0110"` → (`"UA"`, `"110"`): the last run of digits, without
/// leading zeros, and the designator written just before it (the run of
/// letters and digits there, as in `4U`, `U2`; separators skipped, so
/// `"UA110 / LH 400"` gives `LH`). No digits: (`""`, `""`).
fn split_flight_number(number: &str) -> (&str, String) {
    let trimmed = number.trim_end_matches(|c: char| !c.is_ascii_digit());
    // ASCII digits are one byte each.
    let digits_start = trimmed.len() - trimmed.chars().rev().take_while(char::is_ascii_digit).count();
    let digits = trimmed.get(digits_start..).unwrap_or("");
    if digits.is_empty() {
        return ("", String::new());
    }
    let before = trimmed.get(..digits_start).unwrap_or("").trim_end_matches(|c: char| !c.is_alphanumeric());
    let prefix = before.rfind(|c: char| !c.is_alphanumeric()).map_or(before, |i| {
        // `i` starts a separator character; the designator follows it.
        let sep_len = before.get(i..).and_then(|rest| rest.chars().next()).map_or(1, char::len_utf8);
        before.get(i + sep_len..).unwrap_or("")
    });
    let significant = digits.trim_start_matches('0');
    let digits = if significant.is_empty() { "0" } else { significant };
    (prefix, digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flight_numbers() {
        assert_eq!(split_flight_number("UA110"), ("UA", "110".to_owned()));
        assert_eq!(split_flight_number("UA 0110"), ("UA", "110".to_owned()));
        assert_eq!(split_flight_number("4U-8102"), ("4U", "8102".to_owned()));
        assert_eq!(split_flight_number("110"), ("", "110".to_owned()));
        assert_eq!(split_flight_number("000"), ("", "0".to_owned()));
        assert_eq!(split_flight_number("ABC"), ("", String::new()));
        assert_eq!(split_flight_number(""), ("", String::new()));
        assert_eq!(split_flight_number("é1"), ("é", "1".to_owned()));
        assert_eq!(split_flight_number("UA110 / LH 400"), ("LH", "400".to_owned()));
        assert_eq!(split_flight_number("Flight LH400"), ("LH", "400".to_owned()));
        assert_eq!(split_flight_number("x·LH400"), ("LH", "400".to_owned()));
    }

    #[test]
    fn provider_normalisation() {
        assert_eq!(normalise("Deutsche Bahn AG"), "deutschebahnag");
        assert_eq!(normalise(" Hôtel-Ünïon "), "hôtelünïon");
    }
}
