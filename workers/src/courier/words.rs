//! What a notification says, in English or Brazilian Portuguese, with times
//! in the zone of where things happen.
//!
//! A flight's departure is shown in its origin airport's zone and its
//! arrival in its destination's, labelled with the airport code ("14:35
//! GRU"); anything else in the zone where it happens (the reservation's
//! `start_zone`: a hotel's city), else the traveler's own, labelled with
//! the zone's abbreviation. A day and a month are always written out ("Tue 8
//! Dec"), so no reader confuses 8/12 with 12/8.

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use chrono_tz::Tz;
use longhaul_jobs::{
    kind::ReportLocale,
    travel::{airports, Reservation, ReservationStatus, ReservationType, Zone},
};
use serde_json::Value;

/// The languages messages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    PtBr,
}

impl Lang {
    /// The user's language: Portuguese for any `pt` tag, English otherwise.
    pub fn of(locale: Option<&str>) -> Lang {
        match locale.and_then(ReportLocale::from_tag) {
            Some(ReportLocale::PtBr) => Lang::PtBr,
            _ => Lang::En,
        }
    }

    fn weekday(self, at: &DateTime<FixedOffset>) -> &'static str {
        const EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        const PT: [&str; 7] = ["seg", "ter", "qua", "qui", "sex", "sáb", "dom"];
        let day = at.weekday().num_days_from_monday() as usize;
        match self {
            Lang::En => EN[day],
            Lang::PtBr => PT[day],
        }
    }

    fn month(self, at: &DateTime<FixedOffset>) -> &'static str {
        const EN: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        const PT: [&str; 12] = ["jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"];
        let month = at.month0() as usize;
        match self {
            Lang::En => EN[month],
            Lang::PtBr => PT[month],
        }
    }

    /// "Tue 8 Dec, 14:35 GRU" or "ter, 8 dez, 14:35 GRU".
    pub fn local_time(self, at: DateTime<Utc>, place: &Place) -> String {
        let local = place.zone.local(at);
        let clock = format!("{:02}:{:02}", local.hour(), local.minute());
        let label = place.label.clone().unwrap_or_else(|| place.zone.abbreviation(at));
        match self {
            Lang::En => format!("{} {} {}, {clock} {label}", self.weekday(&local), local.day(), self.month(&local)),
            Lang::PtBr => format!("{}, {} {}, {clock} {label}", self.weekday(&local), local.day(), self.month(&local)),
        }
    }

    fn noun(self, kind: ReservationType) -> &'static str {
        match (self, kind) {
            (Lang::En, ReservationType::Flight) => "flight",
            (Lang::En, ReservationType::Lodging) => "stay",
            (Lang::En, ReservationType::RentalCar) => "car rental",
            (Lang::En, ReservationType::Train) => "train",
            (Lang::En, ReservationType::Bus) => "bus",
            (Lang::En, ReservationType::Event) => "event",
            (Lang::En, ReservationType::Food) => "table",
            (Lang::PtBr, ReservationType::Flight) => "voo",
            (Lang::PtBr, ReservationType::Lodging) => "hospedagem",
            (Lang::PtBr, ReservationType::RentalCar) => "aluguel de carro",
            (Lang::PtBr, ReservationType::Train) => "trem",
            (Lang::PtBr, ReservationType::Bus) => "ônibus",
            (Lang::PtBr, ReservationType::Event) => "evento",
            (Lang::PtBr, ReservationType::Food) => "mesa",
        }
    }

    /// Whether the noun is feminine in Portuguese (for "Sua"/"Seu").
    fn feminine(kind: ReservationType) -> bool {
        matches!(kind, ReservationType::Lodging | ReservationType::Food)
    }
}

/// Where a time is shown: a zone, and the label after the clock (an
/// airport code; else the zone's abbreviation).
#[derive(Debug, Clone)]
pub struct Place {
    pub zone: Zone,
    pub label: Option<String>,
}

impl Place {
    /// An airport, in the reservation's zone for it (else the table's).
    fn airport(code: Option<&str>, zone: Option<Zone>) -> Option<Place> {
        let airport = airports::airport(code?)?;
        Some(Place { zone: zone.or_else(|| Zone::of_airport(&airport.iata))?, label: Some(airport.iata.clone()) })
    }

    fn of_zone(zone: Zone) -> Place {
        Place { zone, label: None }
    }
}

/// A title and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub body: String,
}

/// The value of a changed field's side (`from` or `to`).
fn side<'a>(change: &'a Value, side: &str) -> Option<&'a Value> {
    change.get(side).filter(|value| !value.is_null())
}

fn time_of(value: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value?.as_str()?).ok().map(|time| time.with_timezone(&Utc))
}

/// A short text value of the agency's data (`details.agency.<field>`).
fn agency_field(details: Option<&Value>, field: &str) -> Option<String> {
    let value = details?.get("agency")?.get(field)?;
    let text = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    // The agency is not trusted: a field is a few characters, printable.
    (!text.is_empty() && text.chars().count() <= 16 && !text.chars().any(char::is_control)).then_some(text)
}

/// What `reservation.changed` says: one line per change the traveler cares
/// about (time, gate, terminal, seat, room, status), from the event's
/// `changes` and the reservation as it now is.
pub fn reservation_changed(lang: Lang, reservation: &Reservation, changes: &Value, user_zone: Tz) -> Message {
    let kind = reservation.kind;
    let flight = kind == ReservationType::Flight;
    let departure = Place::airport(reservation.origin.as_deref(), reservation.start_zone).filter(|_| flight);
    let arrival = Place::airport(reservation.destination.as_deref(), reservation.end_zone).filter(|_| flight);
    let user_zone = Zone::Named(user_zone);
    let start_place = departure.unwrap_or_else(|| Place::of_zone(reservation.start_zone.unwrap_or(user_zone)));
    let end_place = arrival.unwrap_or_else(|| Place::of_zone(reservation.end_zone.unwrap_or(user_zone)));
    let mut lines = Vec::new();

    let status = changes.get("status").and_then(|change| side(change, "to")).and_then(Value::as_str);
    let cancelled = status == Some(ReservationStatus::Cancelled.as_str());
    let feminine = Lang::feminine(kind);
    // English, and Portuguese as its stem, gender ending and rest.
    let said = match status {
        _ if cancelled => Some(("It has been cancelled.", "Foi cancelad", ".")),
        Some(status) if status == ReservationStatus::Confirmed.as_str() => {
            Some(("It is confirmed again.", "Está confirmad", " de novo."))
        }
        _ => None,
    };
    if let Some((en, stem, rest)) = said {
        lines.push(match lang {
            Lang::En => en.to_owned(),
            Lang::PtBr => format!("{stem}{}{rest}", if feminine { "a" } else { "o" }),
        });
    }
    if let Some(to) = changes.get("starts_at").and_then(|change| time_of(side(change, "to"))) {
        let when = lang.local_time(to, &start_place);
        let was = changes.get("starts_at").and_then(|change| time_of(side(change, "from")));
        let was = was.map(|from| lang.local_time(from, &start_place));
        lines.push(match (lang, kind, was) {
            (Lang::En, ReservationType::Flight, Some(was)) => format!("Departure now {when} (was {was})."),
            (Lang::En, ReservationType::Flight, None) => format!("Departure now {when}."),
            (Lang::En, ReservationType::Lodging, Some(was)) => format!("Check-in now {when} (was {was})."),
            (Lang::En, ReservationType::Lodging, None) => format!("Check-in now {when}."),
            (Lang::En, _, Some(was)) => format!("Now starts {when} (was {was})."),
            (Lang::En, _, None) => format!("Now starts {when}."),
            (Lang::PtBr, ReservationType::Flight, Some(was)) => format!("Partida agora {when} (antes {was})."),
            (Lang::PtBr, ReservationType::Flight, None) => format!("Partida agora {when}."),
            (Lang::PtBr, ReservationType::Lodging, Some(was)) => format!("Check-in agora {when} (antes {was})."),
            (Lang::PtBr, ReservationType::Lodging, None) => format!("Check-in agora {when}."),
            (Lang::PtBr, _, Some(was)) => format!("Agora começa {when} (antes {was})."),
            (Lang::PtBr, _, None) => format!("Agora começa {when}."),
        });
    }
    if let Some(to) = changes.get("ends_at").and_then(|change| time_of(side(change, "to"))) {
        let when = lang.local_time(to, &end_place);
        lines.push(match (lang, kind) {
            (Lang::En, ReservationType::Flight) => format!("Arrival now {when}."),
            (Lang::En, ReservationType::Lodging) => format!("Check-out now {when}."),
            (Lang::En, _) => format!("Now ends {when}."),
            (Lang::PtBr, ReservationType::Flight) => format!("Chegada agora {when}."),
            (Lang::PtBr, ReservationType::Lodging) => format!("Check-out agora {when}."),
            (Lang::PtBr, _) => format!("Agora termina {when}."),
        });
    }
    if let Some(details) = changes.get("details") {
        let (before, after) = (side(details, "from"), side(details, "to"));
        let fields: [(&str, &str, &str); 4] = [
            ("terminal", "Terminal", "Terminal"),
            ("gate", "Gate", "Portão"),
            ("seat", "Seat", "Assento"),
            ("room", "Room", "Quarto"),
        ];
        for (field, en, pt) in fields {
            let (old, new) = (agency_field(before, field), agency_field(after, field));
            if old == new {
                continue;
            }
            let name = match lang {
                Lang::En => en,
                Lang::PtBr => pt,
            };
            lines.push(match (old, new) {
                (Some(old), Some(new)) => match lang {
                    Lang::En => format!("{name} {new} (was {old})."),
                    Lang::PtBr => format!("{name} {new} (antes {old})."),
                },
                (None, Some(new)) => format!("{name} {new}."),
                (Some(old), None) => match lang {
                    Lang::En => format!("{name} {old} no longer assigned."),
                    Lang::PtBr => format!("{name} {old} não está mais atribuído."),
                },
                (None, None) => continue,
            });
        }
    }
    if lines.is_empty() {
        lines.push(match lang {
            Lang::En => "Its details were updated.".to_owned(),
            Lang::PtBr => "Os detalhes foram atualizados.".to_owned(),
        });
    }

    let what = reservation_name(lang, reservation);
    let title = match (lang, cancelled) {
        (Lang::En, false) => format!("Your {what} changed"),
        (Lang::En, true) => format!("Your {what} was cancelled"),
        (Lang::PtBr, false) if feminine => format!("Sua {what} mudou"),
        (Lang::PtBr, false) => format!("Seu {what} mudou"),
        (Lang::PtBr, true) if feminine => format!("Sua {what} foi cancelada"),
        (Lang::PtBr, true) => format!("Seu {what} foi cancelado"),
    };
    Message { title, body: lines.join(" ") }
}

/// "LATAM flight LA3456 GRU→LIS" / "voo LATAM LA3456 GRU→LIS".
fn reservation_name(lang: Lang, reservation: &Reservation) -> String {
    let noun = lang.noun(reservation.kind);
    let provider = clip(&reservation.provider, 40);
    let number = clip(&reservation.reservation_number, 24);
    let route = match (&reservation.origin, &reservation.destination, reservation.kind) {
        (Some(from), Some(to), ReservationType::Flight) => format!(" {from}→{to}"),
        _ => String::new(),
    };
    let name = match lang {
        Lang::En if provider.is_empty() => format!("{noun} {number}{route}"),
        Lang::En => format!("{provider} {noun} {number}{route}"),
        Lang::PtBr if provider.is_empty() => format!("{noun} {number}{route}"),
        Lang::PtBr => format!("{noun} {provider} {number}{route}"),
    };
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `chars` characters of a text that came from outside.
fn clip(text: &str, chars: usize) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// A new trip, as its `trip.ready` event tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct TripFacts {
    pub id: uuid::Uuid,
    /// "Lisbon, May 2027".
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reservations: i64,
}

impl TripFacts {
    /// The event's payload; None when it is not one.
    pub fn read(payload: &Value) -> Option<TripFacts> {
        Some(TripFacts {
            id: payload.get("trip_id")?.as_str()?.parse().ok()?,
            name: payload.get("name")?.as_str()?.to_owned(),
            starts_at: time_of(payload.get("starts_at"))?,
            ends_at: time_of(payload.get("ends_at"))?,
            reservations: payload.get("reservations")?.as_i64()?,
        })
    }
}

/// What a new trip says: where, how many bookings, and its days in the
/// user's zone. The place is the trip name's (a city from an email, so it
/// is cut short and stripped of control characters).
pub fn trip_ready(lang: Lang, trip: &TripFacts, user_zone: Tz) -> Message {
    let place: String =
        trip.name.split(", ").next().unwrap_or_default().chars().filter(|c| !c.is_control()).take(60).collect();
    let zone = Zone::Named(user_zone);
    let day = |at: DateTime<Utc>| {
        let local = zone.local(at);
        match lang {
            Lang::En => format!("{} {} {}", lang.weekday(&local), local.day(), lang.month(&local)),
            Lang::PtBr => format!("{}, {} {}", lang.weekday(&local), local.day(), lang.month(&local)),
        }
    };
    let (from, to) = (day(trip.starts_at), day(trip.ends_at));
    let days = if from == to { from } else { format!("{from} – {to}") };
    let n = trip.reservations;
    let (title, body) = match lang {
        Lang::En => (
            format!("Your trip to {place} is ready"),
            format!("{n} {}, {days}.", if n == 1 { "reservation" } else { "reservations" }),
        ),
        Lang::PtBr => (
            format!("Sua viagem para {place} está pronta"),
            format!("{n} {}, {days}.", if n == 1 { "reserva" } else { "reservas" }),
        ),
    };
    Message { title, body }
}

/// What a finished report says.
pub fn report_ready(lang: Lang, payload: &Value) -> Message {
    let year = payload.get("year").and_then(Value::as_i64);
    let report = payload.get("report").and_then(Value::as_str).unwrap_or_default();
    let title = match (lang, report, year) {
        (Lang::En, "year_summary", Some(year)) => format!("Your {year} in travel is ready"),
        (Lang::PtBr, "year_summary", Some(year)) => format!("Seu {year} em viagens está pronto"),
        (Lang::En, _, _) => "Your report is ready".to_owned(),
        (Lang::PtBr, _, _) => "Seu relatório está pronto".to_owned(),
    };
    let body = match lang {
        Lang::En => "Open it in the app, or download it as PDF, CSV or JSON.".to_owned(),
        Lang::PtBr => "Abra no app, ou baixe em PDF, CSV ou JSON.".to_owned(),
    };
    Message { title, body }
}

/// What a finished video says.
pub fn video_ready(lang: Lang, payload: &Value) -> Message {
    let year = payload.get("year").and_then(Value::as_i64);
    let title = match (lang, year) {
        (Lang::En, Some(year)) => format!("Your {year} video is ready"),
        (Lang::En, None) => "Your video is ready".to_owned(),
        (Lang::PtBr, Some(year)) => format!("Seu vídeo de {year} está pronto"),
        (Lang::PtBr, None) => "Seu vídeo está pronto".to_owned(),
    };
    let body = match lang {
        Lang::En => "Watch it and share it from the app.".to_owned(),
        Lang::PtBr => "Assista e compartilhe pelo app.".to_owned(),
    };
    Message { title, body }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use longhaul_jobs::travel::ReservationSource;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap_or_default()
    }

    fn reservation(kind: ReservationType, route: Option<(&str, &str)>, starts_at: DateTime<Utc>) -> Reservation {
        Reservation {
            id: Uuid::nil(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            kind,
            reservation_number: "QF12".into(),
            provider: "Qantas".into(),
            status: ReservationStatus::Confirmed,
            starts_at,
            ends_at: None,
            trip_id: None,
            trip_pinned: false,
            source: ReservationSource::Agency,
            details: json!({}),
            city: None,
            country: None,
            origin: route.map(|(from, _)| from.to_owned()),
            destination: route.map(|(_, to)| to.to_owned()),
            start_zone: route.and_then(|(from, _)| Zone::of_airport(from)),
            end_zone: route.and_then(|(_, to)| Zone::of_airport(to)),
            starts_local: None,
            ends_local: None,
            created_at: starts_at,
            updated_at: starts_at,
            version: 2,
            checked_at: None,
        }
    }

    fn moved(from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
        json!({"from": from.to_rfc3339(), "to": to.to_rfc3339()})
    }

    fn zone(name: &str) -> Tz {
        name.parse().unwrap_or(chrono_tz::UTC)
    }

    #[test]
    fn a_red_eye_across_the_date_line_shows_each_end_in_its_own_airports_day() {
        // LAX 23:30 on New Year's Eve → SYD two calendar days later.
        let departs = utc(2027, 1, 1, 7, 30);
        let arrives = utc(2027, 1, 1, 20, 15);
        let flight = reservation(ReservationType::Flight, Some(("LAX", "SYD")), departs);
        let changes = json!({
            "starts_at": moved(utc(2027, 1, 1, 6, 30), departs),
            "ends_at": moved(utc(2027, 1, 1, 19, 15), arrives),
        });
        let en = reservation_changed(Lang::En, &flight, &changes, zone("Europe/London"));
        assert_eq!(en.title, "Your Qantas flight QF12 LAX→SYD changed");
        assert_eq!(
            en.body,
            "Departure now Thu 31 Dec, 23:30 LAX (was Thu 31 Dec, 22:30 LAX). Arrival now Sat 2 Jan, 07:15 SYD."
        );
        let pt = reservation_changed(Lang::PtBr, &flight, &changes, zone("America/Sao_Paulo"));
        assert_eq!(pt.title, "Seu voo Qantas QF12 LAX→SYD mudou");
        assert_eq!(
            pt.body,
            "Partida agora qui, 31 dez, 23:30 LAX (antes qui, 31 dez, 22:30 LAX). Chegada agora sáb, 2 jan, 07:15 SYD."
        );
    }

    #[test]
    fn a_stay_across_a_dst_change_shows_each_time_with_its_own_offset() {
        // Berlin leaves CET for CEST on 2026-03-29.
        let check_in = utc(2026, 3, 28, 14, 0); // 15:00 CET
        let check_out = utc(2026, 3, 30, 9, 0); // 11:00 CEST
        let mut stay = reservation(ReservationType::Lodging, None, check_in);
        stay.provider = "Hotel Adlon".into();
        let changes = json!({
            "starts_at": moved(utc(2026, 3, 28, 13, 0), check_in),
            "ends_at": moved(utc(2026, 3, 30, 8, 0), check_out),
        });
        let en = reservation_changed(Lang::En, &stay, &changes, zone("Europe/Berlin"));
        assert_eq!(
            en.body,
            "Check-in now Sat 28 Mar, 15:00 CET (was Sat 28 Mar, 14:00 CET). Check-out now Mon 30 Mar, 11:00 CEST."
        );
        let pt = reservation_changed(Lang::PtBr, &stay, &changes, zone("Europe/Berlin"));
        assert_eq!(pt.title, "Sua hospedagem Hotel Adlon QF12 mudou");
    }

    #[test]
    fn new_years_eve_in_sao_paulo_is_still_the_old_year_though_utc_has_turned() {
        let departs = utc(2027, 1, 1, 1, 0); // 22:00 on 31 Dec in São Paulo
        let flight = reservation(ReservationType::Flight, Some(("GRU", "LIS")), departs);
        let changes = json!({"starts_at": moved(utc(2027, 1, 1, 0, 0), departs)});
        let pt = reservation_changed(Lang::PtBr, &flight, &changes, zone("America/Sao_Paulo"));
        assert!(pt.body.starts_with("Partida agora qui, 31 dez, 22:00 GRU"), "{}", pt.body);
    }

    #[test]
    fn gate_seat_and_status_are_said_in_words_and_the_agency_cannot_inject_text() {
        let flight = reservation(ReservationType::Flight, Some(("GRU", "LIS")), utc(2026, 12, 20, 12, 0));
        let changes = json!({
            "details": {
                "from": {"agency": {"gate": "A12", "seat": "14C", "terminal": "2"}},
                "to": {"agency": {"gate": "B7", "seat": "\u{1b}[2J evil text that is far too long", "terminal": "2"}},
            },
        });
        let en = reservation_changed(Lang::En, &flight, &changes, chrono_tz::UTC);
        assert_eq!(en.body, "Gate B7 (was A12). Seat 14C no longer assigned.");
        let cancelled = json!({"status": {"from": "confirmed", "to": "cancelled"}});
        let pt = reservation_changed(Lang::PtBr, &flight, &cancelled, chrono_tz::UTC);
        assert_eq!(
            (pt.title.as_str(), pt.body.as_str()),
            ("Seu voo Qantas QF12 GRU→LIS foi cancelado", "Foi cancelado.")
        );
        let nothing = reservation_changed(Lang::En, &flight, &json!({}), chrono_tz::UTC);
        assert_eq!(nothing.body, "Its details were updated.");
    }

    #[test]
    fn ready_messages_follow_the_locale() {
        assert_eq!(Lang::of(Some("pt-BR")), Lang::PtBr);
        assert_eq!(Lang::of(Some("pt")), Lang::PtBr);
        assert_eq!(Lang::of(Some("fr-FR")), Lang::En);
        assert_eq!(Lang::of(None), Lang::En);
        let year = json!({"report": "year_summary", "year": 2026});
        assert_eq!(report_ready(Lang::PtBr, &year).title, "Seu 2026 em viagens está pronto");
        assert_eq!(report_ready(Lang::En, &json!({"report": "funnel"})).title, "Your report is ready");
        assert_eq!(video_ready(Lang::En, &json!({"year": 2026})).title, "Your 2026 video is ready");
        assert_eq!(video_ready(Lang::PtBr, &json!({})).title, "Seu vídeo está pronto");
    }

    #[test]
    fn a_new_trip_is_told_in_the_users_days_and_language() {
        let trip = TripFacts::read(&json!({
            "trip_id": Uuid::nil(), "name": "Lisbon, May 2027",
            // 23:30 on 13 May in São Paulo; home on 20 May.
            "starts_at": "2027-05-14T02:30:00Z", "ends_at": "2027-05-20T18:00:00Z", "reservations": 3,
        }))
        .expect("a trip.ready payload");
        let en = trip_ready(Lang::En, &trip, zone("America/Sao_Paulo"));
        assert_eq!(en.title, "Your trip to Lisbon is ready");
        assert_eq!(en.body, "3 reservations, Thu 13 May – Thu 20 May.");
        let pt = trip_ready(Lang::PtBr, &trip, zone("Europe/Lisbon"));
        assert_eq!(pt.title, "Sua viagem para Lisbon está pronta");
        assert_eq!(pt.body, "3 reservas, sex, 14 mai – qui, 20 mai.");
        let one_day = TripFacts { reservations: 1, ends_at: trip.starts_at, ..trip };
        assert_eq!(trip_ready(Lang::En, &one_day, chrono_tz::UTC).body, "1 reservation, Fri 14 May.");
        assert_eq!(TripFacts::read(&json!({"trip_id": "not a uuid"})), None);
    }
}
