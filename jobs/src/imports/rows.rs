//! One row of an import file, sanitised and checked: every cell is trimmed,
//! control characters and over-long values are refused, times need an
//! offset, codes are looked up. A row that fails says why, once per field,
//! in words an admin can act on; nothing of it is written.

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde_json::Value;

use super::{ImportedReservation, ImportedUser};
use crate::travel::{airports::airport, ReservationFields, ReservationStatus, ReservationType};

/// The longest user id: what a token's `sub` may be here.
pub const USER_ID_MAX_CHARS: usize = 128;
const EMAIL_MAX_CHARS: usize = 254;
const NAME_MAX_CHARS: usize = 200;
const LOCALE_MAX_CHARS: usize = 35;

/// The years a reservation's times may fall in.
pub const IMPORT_YEARS: std::ops::RangeInclusive<i32> = 1970..=2100;

/// Why one field of a row was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The column, or `row` for the row as a whole.
    pub field: String,
    pub reason: String,
}

impl RowError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> RowError {
        RowError { field: field.into(), reason: reason.into() }
    }
}

/// A value quoted in a reason: at most 40 characters of it.
fn quoted(value: &str) -> String {
    let mut shown: String = value.chars().take(40).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    format!("`{shown}`")
}

/// The checks of a row, collecting every field's problem.
struct Check {
    errors: Vec<RowError>,
}

impl Check {
    fn fail(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(RowError::new(field, reason));
    }

    /// A text cell: trimmed, `None` when empty; refused (and `None`) when it
    /// is longer than `max` or holds control characters.
    fn text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        let value = value?;
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.chars().count() > max {
            self.fail(field, format!("is longer than {max} characters"));
            return None;
        }
        if trimmed.chars().any(char::is_control) {
            self.fail(field, "holds a control character");
            return None;
        }
        Some(trimmed.to_owned())
    }

    fn required(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        let had = value.as_deref().is_some_and(|v| !v.trim().is_empty());
        let text = self.text(field, value, max);
        if !had {
            self.fail(field, "is required");
        }
        text
    }

    fn user(&mut self, value: Option<String>) -> Option<String> {
        let user = self.required("user", value, USER_ID_MAX_CHARS)?;
        if user.starts_with('_') {
            self.fail("user", "starts with `_`, which is reserved for the platform's own jobs");
            return None;
        }
        Some(user)
    }

    /// An ISO 8601 time with an offset (`2026-05-01T10:00:00+01:00`, or `Z`).
    fn time(&mut self, field: &str, value: Option<String>) -> Option<DateTime<Utc>> {
        let value = self.text(field, value, 64)?;
        match DateTime::parse_from_rfc3339(&value) {
            Ok(time) if IMPORT_YEARS.contains(&time.year()) => Some(time.with_timezone(&Utc)),
            Ok(_) => {
                let (from, to) = (IMPORT_YEARS.start(), IMPORT_YEARS.end());
                self.fail(field, format!("{} is not between the years {from} and {to}", quoted(&value)));
                None
            }
            Err(_) if is_local_time(&value) => {
                self.fail(field, format!("{} has no UTC offset; add one, such as `+01:00` or `Z`", quoted(&value)));
                None
            }
            Err(_) => {
                self.fail(
                    field,
                    format!(
                        "{} is not an ISO 8601 time with an offset, such as `2026-05-01T10:00:00+01:00`",
                        quoted(&value)
                    ),
                );
                None
            }
        }
    }

    /// An IATA airport code longhaul knows, upper-cased.
    fn airport(&mut self, field: &str, value: Option<String>) -> Option<String> {
        let value = self.text(field, value, 16)?;
        let code = value.to_ascii_uppercase();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            self.fail(field, format!("{} is not an IATA airport code (three letters, such as `LIS`)", quoted(&value)));
            return None;
        }
        if airport(&code).is_none() {
            self.fail(field, format!("`{code}` is not an airport longhaul knows"));
            return None;
        }
        Some(code)
    }
}

/// `2026-05-01T10:00:00` or `2026-05-01 10:00`: a time that parses once an
/// offset is added.
fn is_local_time(value: &str) -> bool {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .any(|format| NaiveDateTime::parse_from_str(value, format).is_ok())
}

/// A reservation from a row's cells, looked up by column name (`user, type,
/// reservation_number, provider, starts_at, ends_at, from, to`); `cell`
/// gives `None` for a column the file does not have. `from` and `to` are
/// required for a flight, and checked wherever they are given.
pub fn reservation_row(mut cell: impl FnMut(&str) -> Option<String>) -> Result<ImportedReservation, Vec<RowError>> {
    let mut check = Check { errors: Vec::new() };
    let user = check.user(cell("user"));
    let kind = check.required("type", cell("type"), 32).and_then(|text| {
        match text.to_ascii_lowercase().parse::<ReservationType>() {
            Ok(kind) => Some(kind),
            Err(_) => {
                let known: Vec<&str> = ReservationType::ALL.iter().map(|kind| kind.as_str()).collect();
                check.fail("type", format!("{} is not a type; expected one of {}", quoted(&text), known.join(", ")));
                None
            }
        }
    });
    let number = check.required(
        "reservation_number",
        cell("reservation_number"),
        ReservationFields::RESERVATION_NUMBER_MAX_CHARS,
    );
    // One name per vendor (`LATAM`, `Latam Airlines Group` → `LATAM
    // Airlines`), as email extraction gives; a flight's provider may also be
    // its airline's designator (`LA`).
    let provider =
        check.required("provider", cell("provider"), ReservationFields::PROVIDER_MAX_CHARS).map(|provider| {
            let canonical = match kind {
                Some(ReservationType::Flight) => longhaul_markup::canonical_airline(&provider),
                _ => longhaul_markup::canonical_provider(&provider),
            };
            canonical.into_owned()
        });
    let starts_raw = cell("starts_at");
    let had_start = starts_raw.as_deref().is_some_and(|v| !v.trim().is_empty());
    let starts_at = check.time("starts_at", starts_raw);
    if !had_start {
        check.fail("starts_at", "is required");
    }
    let ends_raw = cell("ends_at");
    let has_ends_at = ends_raw.as_deref().is_some_and(|v| !v.trim().is_empty());
    let ends_at = check.time("ends_at", ends_raw);
    if let (Some(starts), Some(ends)) = (starts_at, ends_at) {
        if ends < starts {
            check.fail("ends_at", "is before starts_at");
        }
    }
    let (from_raw, to_raw) = (cell("from"), cell("to"));
    let has_origin = from_raw.as_deref().is_some_and(|v| !v.trim().is_empty());
    let has_destination = to_raw.as_deref().is_some_and(|v| !v.trim().is_empty());
    let origin = check.airport("from", from_raw);
    let destination = check.airport("to", to_raw);
    if kind == Some(ReservationType::Flight) {
        for (field, given) in [("from", has_origin), ("to", has_destination)] {
            if !given {
                check.fail(field, "is required for a flight");
            }
        }
    }
    let (Some(user_id), Some(kind), Some(reservation_number), Some(provider), Some(starts_at), true) =
        (user, kind, number, provider, starts_at, check.errors.is_empty())
    else {
        return Err(check.errors);
    };
    let place = destination.as_deref().or(origin.as_deref()).and_then(airport);
    let fields = ReservationFields {
        kind,
        reservation_number,
        provider,
        status: ReservationStatus::Confirmed,
        starts_at,
        ends_at,
        details: Value::Object(serde_json::Map::new()),
        city: place.map(|airport| airport.city.clone()).filter(|city| !city.is_empty()),
        country: place.map(|airport| airport.country.clone()).filter(|country| !country.is_empty()),
        origin,
        destination,
        start_zone: None,
        end_zone: None,
    }
    .placed();
    Ok(ImportedReservation { user_id, fields, has_ends_at, has_origin, has_destination })
}

/// A user from a row's cells (`user, email, name, time_zone, locale`).
pub fn user_row(mut cell: impl FnMut(&str) -> Option<String>) -> Result<ImportedUser, Vec<RowError>> {
    let mut check = Check { errors: Vec::new() };
    let user = check.user(cell("user"));
    let email = check.required("email", cell("email"), EMAIL_MAX_CHARS).and_then(|email| {
        let normalised = normalise_email(&email);
        if normalised.is_none() {
            check.fail("email", format!("{} is not an email address", quoted(&email)));
        }
        normalised
    });
    let name = check.text("name", cell("name"), NAME_MAX_CHARS);
    let time_zone =
        check.text("time_zone", cell("time_zone"), 64).and_then(|zone| match zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz.name().to_owned()),
            Err(_) => {
                check.fail(
                    "time_zone",
                    format!("{} is not an IANA time zone, such as `America/Sao_Paulo`", quoted(&zone)),
                );
                None
            }
        });
    let locale = check.text("locale", cell("locale"), LOCALE_MAX_CHARS).and_then(|tag| {
        let normalised = normalise_locale(&tag);
        if normalised.is_none() {
            check.fail("locale", format!("{} is not a language tag, such as `pt-BR`", quoted(&tag)));
        }
        normalised
    });
    match (user, email, check.errors.is_empty()) {
        (Some(user_id), Some(email), true) => Ok(ImportedUser { user_id, email, name, time_zone, locale }),
        _ => Err(check.errors),
    }
}

/// `local@domain`, the domain lower-cased: one `@`, a dotted domain of
/// letters, digits and hyphens, no spaces. (Deliverability is the mail
/// server's to judge; this catches the typos and the stray columns.)
fn normalise_email(email: &str) -> Option<String> {
    let (local, domain) = email.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | ',' | ';'));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    (local_ok && domain_ok).then(|| format!("{local}@{}", domain.to_lowercase()))
}

/// A BCP 47 tag as longhaul stores it: `pt-BR` from `pt_br`. A language of
/// 2 or 3 letters, then subtags of 1 to 8 letters or digits.
pub fn normalise_locale(tag: &str) -> Option<String> {
    let mut parts = tag.split(['-', '_']);
    let language = parts.next()?;
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = language.to_ascii_lowercase();
    for part in parts {
        if part.is_empty() || part.len() > 8 || !part.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        out.push('-');
        // A region is upper case (`BR`), a script title case (`Latn`).
        match part.len() {
            2 => out.push_str(&part.to_ascii_uppercase()),
            4 if part.chars().all(|c| c.is_ascii_alphabetic()) => {
                out.push_str(&part[..1].to_ascii_uppercase());
                out.push_str(&part[1..].to_ascii_lowercase());
            }
            _ => out.push_str(&part.to_ascii_lowercase()),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cells(pairs: &[(&str, &str)]) -> impl FnMut(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    fn flight() -> Vec<(&'static str, &'static str)> {
        vec![
            ("user", "ana"),
            ("type", "flight"),
            ("reservation_number", "ABC123"),
            ("provider", "TAP Air Portugal"),
            ("starts_at", "2026-05-01T10:00:00+01:00"),
            ("ends_at", "2026-05-01T12:00:00+01:00"),
            ("from", "lis"),
            ("to", "OPO"),
        ]
    }

    fn with(
        mut row: Vec<(&'static str, &'static str)>,
        field: &'static str,
        value: &'static str,
    ) -> Vec<(&'static str, &'static str)> {
        row.retain(|(name, _)| *name != field);
        row.push((field, value));
        row
    }

    fn fields_of(errors: Vec<RowError>) -> Vec<String> {
        errors.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn a_good_flight_is_normalised_and_placed_at_its_destination() {
        let row = reservation_row(cells(&flight())).unwrap();
        assert_eq!(row.user_id, "ana");
        assert_eq!(row.fields.origin.as_deref(), Some("LIS"));
        assert_eq!(row.fields.starts_at.to_rfc3339(), "2026-05-01T09:00:00+00:00");
        assert_eq!(row.fields.country.as_deref(), Some("PT"));
        assert_eq!(row.dedupe_key(), "import/flight/ABC123");
    }

    #[test]
    fn every_bad_field_is_named_once() {
        let cases: [(&str, &str, &str); 10] = [
            ("user", "", "user"),
            ("user", "_scheduler", "user"),
            ("type", "boat", "type"),
            ("reservation_number", "A\u{7}B", "reservation_number"),
            ("starts_at", "2026-05-01T10:00:00", "starts_at"),
            ("starts_at", "yesterday", "starts_at"),
            ("starts_at", "1900-01-01T00:00:00Z", "starts_at"),
            ("ends_at", "2026-05-01T08:00:00+01:00", "ends_at"),
            ("from", "LISB", "from"),
            ("to", "QQQ", "to"),
        ];
        for (field, value, named) in cases {
            let errors = reservation_row(cells(&with(flight(), field, value))).unwrap_err();
            assert_eq!(fields_of(errors), vec![named.to_owned()], "{field} = {value:?}");
        }
        let long = "x".repeat(201);
        let mut row: HashMap<&str, String> = flight().into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        row.insert("provider", long);
        let errors = reservation_row(|name| row.get(name).cloned()).unwrap_err();
        assert_eq!(errors[0].reason, "is longer than 200 characters");
    }

    #[test]
    fn the_provider_is_the_vendors_canonical_name() {
        for (kind, given, stored) in [
            ("flight", "Latam Airlines Group", "LATAM Airlines"),
            ("flight", "LATAM AIRLINES", "LATAM Airlines"),
            ("flight", "LA", "LATAM Airlines"),
            ("flight", "TAP Air Portugal", "TAP Air Portugal"),
            ("rental_car", "hertz rent-a-car", "Hertz"),
            ("lodging", "  Hotel   Infante  Sagres ", "Hotel Infante Sagres"),
            // A designator names an airline only on a flight.
            ("event", "LA", "LA"),
        ] {
            let row = with(with(flight(), "type", kind), "provider", given);
            let row = reservation_row(cells(&row)).unwrap();
            assert_eq!(row.fields.provider, stored, "{kind} {given:?}");
        }
    }

    #[test]
    fn a_flight_needs_both_airports_and_a_stay_needs_none() {
        let no_to: Vec<_> = flight().into_iter().filter(|(name, _)| *name != "to").collect();
        assert_eq!(fields_of(reservation_row(cells(&no_to)).unwrap_err()), vec!["to"]);
        let stay =
            with(flight().into_iter().filter(|(name, _)| !matches!(*name, "from" | "to")).collect(), "type", "lodging");
        let row = reservation_row(cells(&stay)).unwrap();
        assert_eq!((row.fields.origin, row.has_destination), (None, false));
    }

    #[test]
    fn a_row_of_nothing_says_what_is_required() {
        let errors = reservation_row(|_| None).unwrap_err();
        assert_eq!(fields_of(errors), vec!["user", "type", "reservation_number", "provider", "starts_at"]);
    }

    #[test]
    fn users_are_checked_and_normalised() {
        let good = [
            ("user", "ana"),
            ("email", "Ana@Example.COM"),
            ("name", " Ana Souza "),
            ("time_zone", "America/Sao_Paulo"),
            ("locale", "pt_br"),
        ];
        let user = user_row(cells(&good)).unwrap();
        assert_eq!(user.email, "Ana@example.com");
        assert_eq!(user.name.as_deref(), Some("Ana Souza"));
        assert_eq!(user.locale.as_deref(), Some("pt-BR"));
        let bad =
            [("user", "bo"), ("email", "bo at example"), ("time_zone", "Mars/Olympus"), ("locale", "portuguese!")];
        assert_eq!(fields_of(user_row(cells(&bad)).unwrap_err()), vec!["email", "time_zone", "locale"]);
        let only = [("user", "cy"), ("email", "cy@example.org")];
        assert_eq!(user_row(cells(&only)).unwrap().time_zone, None);
    }
}
