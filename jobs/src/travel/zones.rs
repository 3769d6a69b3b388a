//! Where a reservation happens, in time: the zone of its start (the
//! departure airport, the hotel's city) and of its end (the arrival
//! airport), so that reports, notifications and the video show the time a
//! traveler reads on their ticket.
//!
//! A zone is an IANA name when the place is known, else the fixed offset the
//! markup gave. Places are looked up in the airports table: an airport by
//! its code; a city by its name and country (the zone of that city's
//! airports), else a country whose airports all keep one zone.

use std::{collections::HashMap, fmt, str::FromStr, sync::OnceLock};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::{airports, ReservationType};

/// A time zone: an IANA zone, or a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Named(Tz),
    Fixed(FixedOffset),
}

impl Zone {
    pub const UTC: Zone = Zone::Named(Tz::UTC);

    /// An IANA name (`Europe/Lisbon`, as spelled in the zone database) or
    /// an offset (`+05:30`, `-0300`, `+09`, `Z`). None for anything else,
    /// surrounding spaces included: [`Zone::pattern`] states the same.
    pub fn parse(text: &str) -> Option<Zone> {
        if text.eq_ignore_ascii_case("z") {
            return Some(Zone::Fixed(FixedOffset::east_opt(0)?));
        }
        if text.starts_with(['+', '-']) {
            return parse_offset(text).map(Zone::Fixed);
        }
        Tz::from_str(text).ok().map(Zone::Named)
    }

    /// What [`Zone::parse`] accepts, as a regular expression (for the API's
    /// schema).
    pub fn pattern() -> String {
        let names: Vec<String> = chrono_tz::TZ_VARIANTS.iter().map(|tz| regex_escape(tz.name())).collect();
        format!("^(?:{}|[+-](?:0[0-9]|1[0-8])(?::?[0-5][0-9])?|[Zz])$", names.join("|"))
    }

    /// The offset from UTC at `at`.
    pub fn offset_at(&self, at: DateTime<Utc>) -> FixedOffset {
        match self {
            Zone::Named(tz) => tz.offset_from_utc_datetime(&at.naive_utc()).fix(),
            Zone::Fixed(offset) => *offset,
        }
    }

    /// `at` as the local time of this zone.
    pub fn local(&self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        at.with_timezone(&self.offset_at(at))
    }

    /// The instant of a wall-clock time in this zone. Of a time that
    /// happens twice (the hour clocks go back), the first; of one that does
    /// not happen (the hour clocks skip), the time the clocks show after
    /// moving on as much as they skipped (02:30 in a 02:00→03:00 gap is
    /// 03:30), as most calendars do.
    pub fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let tz = match self {
            Zone::Fixed(offset) => return offset.from_local_datetime(&local).single().map(|t| t.to_utc()),
            Zone::Named(tz) => tz,
        };
        if let Some(at) = tz.from_local_datetime(&local).earliest() {
            return Some(at.to_utc());
        }
        // In a gap: read the time with the offset in force before it.
        let before = local.checked_sub_signed(TimeDelta::try_hours(6)?)?;
        let offset = tz.from_local_datetime(&before).earliest()?.offset().fix();
        local.checked_sub_signed(TimeDelta::try_seconds(i64::from(offset.local_minus_utc()))?).map(|t| t.and_utc())
    }

    /// The zone's short name at `at` (`CET`, `-03`), as a traveler reads it.
    pub fn abbreviation(&self, at: DateTime<Utc>) -> String {
        match self {
            Zone::Named(tz) => at.with_timezone(tz).format("%Z").to_string(),
            Zone::Fixed(offset) => format_offset(*offset),
        }
    }

    /// The zone of an airport, by IATA code.
    pub fn of_airport(iata: &str) -> Option<Zone> {
        airports::airport(iata).and_then(|a| Tz::from_str(&a.tz).ok()).map(Zone::Named)
    }

    /// The zone of a city (its airports' zone), or of its country when the
    /// city is unknown and every airport of the country keeps one zone.
    pub fn of_city(city: Option<&str>, country: Option<&str>) -> Option<Zone> {
        let country = country?.trim().to_ascii_uppercase();
        let places = places();
        city.map(longhaul_markup::fold_name)
            .and_then(|city| places.cities.get(&(city, country.clone())))
            .or_else(|| places.countries.get(&country).and_then(Option::as_ref))
            .copied()
            .map(Zone::Named)
    }

    /// The zones of a reservation's start and end from where it happens:
    /// a flight leaves from its origin's zone and arrives in its
    /// destination's; anything else starts and ends in its city's.
    pub fn of_place(
        kind: ReservationType,
        origin: Option<&str>,
        destination: Option<&str>,
        city: Option<&str>,
        country: Option<&str>,
    ) -> (Option<Zone>, Option<Zone>) {
        match kind {
            ReservationType::Flight => (origin.and_then(Zone::of_airport), destination.and_then(Zone::of_airport)),
            _ => {
                let zone = Zone::of_city(city, country);
                (zone, zone)
            }
        }
    }

    /// Where a time the markup wrote happens: `written` is the wall-clock
    /// time as written and the offset it carried (if any), `place` the zone
    /// of where it happens (if known). With an offset the instant is that
    /// offset's, and the zone the place's when it agrees with the offset,
    /// else the offset; without one the wall-clock is the place's (or UTC,
    /// when the place is unknown too: then there is no zone).
    pub fn settle(
        local: NaiveDateTime,
        offset: Option<FixedOffset>,
        place: Option<Zone>,
    ) -> Option<(DateTime<Utc>, Option<Zone>)> {
        match (offset, place) {
            (Some(offset), place) => {
                let at = offset.from_local_datetime(&local).single()?.to_utc();
                let zone = place.filter(|zone| zone.offset_at(at) == offset).unwrap_or(Zone::Fixed(offset));
                Some((at, Some(zone)))
            }
            (None, Some(zone)) => Some((zone.instant(local)?, Some(zone))),
            (None, None) => Some((local.and_utc(), None)),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Named(tz) => f.write_str(tz.name()),
            Zone::Fixed(offset) => f.write_str(&format_offset(*offset)),
        }
    }
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(text: &str) -> Result<Zone, String> {
        Zone::parse(text).ok_or_else(|| {
            format!("`{text}` is not a time zone: use an IANA name such as `America/Sao_Paulo`, or an offset such as `-03:00`")
        })
    }
}

impl serde::Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Zone, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl crate::store::FromColumn for Option<Zone> {
    fn from_column(row: &impl crate::store::Columns, column: &str) -> crate::store::Result<Self> {
        // A name this build's zone database lacks reads as unknown, not as
        // a broken row: the reservation is still shown, in UTC.
        Ok(row.get::<Option<String>>(column)?.and_then(|text| Zone::parse(&text)))
    }
}

/// `+05:30`, `-03:00`, `+00:00`.
fn format_offset(offset: FixedOffset) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// `±HH:MM`, `±HHMM` or `±HH`, within ±18 hours ([`Zone::PATTERN`]'s
/// second half).
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = text.get(1..)?;
    let (hours, minutes) = match rest.len() {
        2 => (rest, "00"),
        4 => (rest.get(..2)?, rest.get(2..)?),
        5 if rest.as_bytes().get(2) == Some(&b':') => (rest.get(..2)?, rest.get(3..)?),
        _ => return None,
    };
    if !(hours.bytes().chain(minutes.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 18 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Zone names hold letters, digits, `/`, `_`, `-` and `+`; `+` is the one
/// a regular expression reads as more than itself. (`regex::escape` would
/// also escape `-`, which an ECMA-262 pattern in Unicode mode, as JSON
/// Schema's are read, rejects outside a class.)
fn regex_escape(name: &str) -> String {
    name.replace('+', r"\+")
}

struct Places {
    /// (folded city, country) → the zone most of its airports keep.
    cities: HashMap<(String, String), Tz>,
    /// Country → its zone when all its airports keep one, else None.
    countries: HashMap<String, Option<Tz>>,
}

fn places() -> &'static Places {
    static PLACES: OnceLock<Places> = OnceLock::new();
    PLACES.get_or_init(|| {
        let mut votes: HashMap<(String, String), HashMap<Tz, usize>> = HashMap::new();
        let mut countries: HashMap<String, Option<Tz>> = HashMap::new();
        for airport in airports::all() {
            let Ok(tz) = Tz::from_str(&airport.tz) else { continue };
            countries
                .entry(airport.country.clone())
                .and_modify(|zone| {
                    if *zone != Some(tz) {
                        *zone = None;
                    }
                })
                .or_insert(Some(tz));
            if !airport.city.trim().is_empty() {
                *votes
                    .entry((longhaul_markup::fold_name(&airport.city), airport.country.clone()))
                    .or_default()
                    .entry(tz)
                    .or_default() += 1;
            }
        }
        let cities = votes
            .into_iter()
            .filter_map(|(place, zones)| {
                // The zone most airports of the city keep; a tie goes to the
                // first name, so the table decides, not the hash.
                let best = zones.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.name().cmp(a.0.name())))?;
                Some((place, best.0))
            })
            .collect();
        Places { cities, countries }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(h, min, 0)).expect("a time")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("an RFC 3339 time")
    }

    #[test]
    fn zones_read_and_write_names_and_offsets() {
        for text in ["Europe/Lisbon", "America/Sao_Paulo", "+05:30", "-03:00", "+00:00"] {
            assert_eq!(Zone::parse(text).map(|z| z.to_string()).as_deref(), Some(text));
        }
        assert_eq!(Zone::parse("+0530").map(|z| z.to_string()).as_deref(), Some("+05:30"));
        assert_eq!(Zone::parse("Z").map(|z| z.to_string()).as_deref(), Some("+00:00"));
        assert_eq!(Zone::parse("-09").map(|z| z.to_string()).as_deref(), Some("-09:00"));
        for bad in ["", "Mars/Olympus", "+25:00", "+5:3", "-03:00:00", "03:00", "+ab:cd", "+1:800", " UTC", "+19"] {
            assert_eq!(Zone::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_pattern_accepts_what_parse_accepts() {
        let pattern = regex::Regex::new(&Zone::pattern()).expect("a regular expression");
        let samples = ["Europe/Lisbon", "Etc/GMT+3", "America/Port-au-Prince", "+05:30", "-0300", "+18", "Z", "z"];
        let bad = ["", "Mars/Olympus", "+25:00", "+5:3", "-03:00:00", "03:00", "+1:800", " UTC", "+19", "+18:60"];
        for text in samples.iter().chain(&bad) {
            assert_eq!(pattern.is_match(text), Zone::parse(text).is_some(), "{text:?}");
        }
    }

    #[test]
    fn airports_and_cities_have_their_zones() {
        assert_eq!(Zone::of_airport("gru").map(|z| z.to_string()).as_deref(), Some("America/Sao_Paulo"));
        assert_eq!(Zone::of_airport("HNL").map(|z| z.to_string()).as_deref(), Some("Pacific/Honolulu"));
        assert_eq!(Zone::of_airport("ZZZ"), None);
        let city = |c: &str, k: &str| Zone::of_city(Some(c), Some(k)).map(|z| z.to_string());
        assert_eq!(city("Lisbon", "PT").as_deref(), Some("Europe/Lisbon"));
        assert_eq!(city("são paulo", "br").as_deref(), Some("America/Sao_Paulo"));
        assert_eq!(city("New York", "US").as_deref(), Some("America/New_York"));
        // An unknown city of a one-zone country is that zone; of a country
        // with several, unknown.
        assert_eq!(city("Óbidos", "PT"), None, "Portugal has the Azores");
        assert_eq!(city("Nowhere", "JP").as_deref(), Some("Asia/Tokyo"));
        assert_eq!(city("Nowhere", "US"), None);
        assert_eq!(Zone::of_city(None, None), None);
    }

    #[test]
    fn wall_clock_times_become_instants_across_dst() {
        let lisbon = Zone::parse("Europe/Lisbon").expect("a zone");
        // Summer and winter.
        assert_eq!(lisbon.instant(local(2027, 7, 1, 12, 0)), Some(utc("2027-07-01T11:00:00Z")));
        assert_eq!(lisbon.instant(local(2027, 1, 1, 12, 0)), Some(utc("2027-01-01T12:00:00Z")));
        // 28 March 2027, 01:00 → 02:00: 01:30 does not exist, and is read as
        // 02:30 WEST; 31 October 2027, 02:00 → 01:00: 01:30 is the first.
        assert_eq!(lisbon.instant(local(2027, 3, 28, 1, 30)), Some(utc("2027-03-28T01:30:00Z")));
        assert_eq!(lisbon.local(utc("2027-03-28T01:30:00Z")).to_rfc3339(), "2027-03-28T02:30:00+01:00");
        assert_eq!(lisbon.instant(local(2027, 10, 31, 1, 30)), Some(utc("2027-10-31T00:30:00Z")));
        assert_eq!(lisbon.abbreviation(utc("2027-07-01T11:00:00Z")), "WEST");
    }

    #[test]
    fn markup_times_settle_in_their_place() {
        let gru = Zone::of_airport("GRU");
        // No offset: the airport's wall clock.
        let (at, zone) = Zone::settle(local(2027, 3, 14, 22, 0), None, gru).expect("settled");
        assert_eq!((at, zone), (utc("2027-03-15T01:00:00Z"), gru));
        // An offset that agrees with the airport keeps the airport's name.
        let minus3 = FixedOffset::west_opt(3 * 3600);
        let (at, zone) = Zone::settle(local(2027, 3, 14, 22, 0), minus3, gru).expect("settled");
        assert_eq!((at, zone), (utc("2027-03-15T01:00:00Z"), gru));
        // One that does not is kept as written.
        let plus1 = FixedOffset::east_opt(3600);
        let (at, zone) = Zone::settle(local(2027, 3, 14, 22, 0), plus1, gru).expect("settled");
        assert_eq!((at, zone.map(|z| z.to_string())), (utc("2027-03-14T21:00:00Z"), Some("+01:00".to_owned())));
        // Nothing known: UTC, no zone.
        assert_eq!(Zone::settle(local(2027, 3, 14, 22, 0), None, None), Some((utc("2027-03-14T22:00:00Z"), None)));
    }
}
