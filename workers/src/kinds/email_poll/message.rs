//! One email, as `email_poll` judges and reads it: who sent it (and whether
//! we trust them), when, and the reservations its markup holds.
//!
//! The poll reads headers first and decides from them alone whether a
//! message is worth its body: the sender's domain must be on the account's
//! allow-list (exactly, or as a subdomain), the receiving server's DKIM
//! verdict must agree with the account's policy, and the message must fit
//! the size cap. Only then are the HTML parts fetched and handed to the
//! markup extractor (`longhaul-markup`).

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use longhaul_jobs::travel::{
    airports::airport,
    mail::{domain_allowed, DkimPolicy, FoundReservation},
    ReservationFields, ReservationStatus, ReservationType, Zone,
};
use longhaul_markup::{Found, Kind, Status};
use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

/// A message larger than this is never fetched: booking confirmations are
/// small, and the cap bounds what one poll can be made to download.
pub const MAX_MESSAGE_BYTES: u32 = 25 * 1024 * 1024;
/// Each HTML (or JSON-LD) part fetched is at most this large.
pub const MAX_PART_BYTES: u32 = 2 * 1024 * 1024;
/// At most this much of a message's header is fetched: senders, dates and
/// verdicts are at its top, and a batch of headers stays a few MiB.
pub const MAX_HEADER_BYTES: u32 = 256 * 1024;
/// At most this many parts of one message are fetched.
pub const MAX_PARTS: usize = 8;

/// What the headers say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// The `From` address's domain, lower case.
    pub from_domain: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    /// `dkim=` verdicts of the topmost `Authentication-Results` (the
    /// receiving server's), each with its `header.d`.
    pub dkim: Vec<(String, Option<String>)>,
}

/// Why a message is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    NoSender,
    NotAllowed(String),
    Dkim(String),
    TooLarge(u32),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NoSender => f.write_str("no From address"),
            Skip::NotAllowed(domain) => write!(f, "sender domain `{domain}` is not allowed"),
            Skip::Dkim(why) => write!(f, "DKIM: {why}"),
            Skip::TooLarge(size) => write!(f, "{size} bytes is over the {MAX_MESSAGE_BYTES}-byte cap"),
        }
    }
}

/// Parses a message's header block (or a whole message: the body is
/// ignored).
pub fn envelope(header: &[u8]) -> Envelope {
    let Some(message) = MessageParser::new().parse_headers(header) else { return Envelope::default() };
    let from = message.from().and_then(|from| from.first()).and_then(|addr| addr.address()).map(str::to_owned);
    let from_domain = from
        .as_deref()
        .and_then(|addr| addr.rsplit_once('@'))
        .map(|(_, domain)| domain.trim().trim_end_matches('>').trim_end_matches('.').to_ascii_lowercase());
    let date = message.date().and_then(|date| {
        let offset = i32::from(date.tz_hour) * 3600 + i32::from(date.tz_minute) * 60;
        let offset = FixedOffset::east_opt(if date.tz_before_gmt { -offset } else { offset })?;
        let utc = Utc.timestamp_opt(date.to_timestamp(), 0).single()?;
        Some(utc.with_timezone(&offset))
    });
    // Only the topmost `Authentication-Results` counts: the receiving
    // server prepends its own, and anything below it (or in the message as
    // sent) may be the sender's forgery.
    let dkim = message
        .headers()
        .iter()
        .find(|header| header.name().eq_ignore_ascii_case("Authentication-Results"))
        .map(|header| match header.value() {
            HeaderValue::Text(text) => dkim_verdicts(text),
            HeaderValue::TextList(list) => dkim_verdicts(&list.join(" ")),
            _ => Vec::new(),
        })
        .unwrap_or_default();
    Envelope { from_domain, from, subject: message.subject().map(str::to_owned), date, dkim }
}

/// The `dkim=<result> … header.d=<domain>` clauses of one
/// `Authentication-Results` value (RFC 8601).
fn dkim_verdicts(value: &str) -> Vec<(String, Option<String>)> {
    value
        .split(';')
        .filter_map(|clause| {
            let mut words = clause.split_whitespace();
            let result = words.find_map(|word| word.to_ascii_lowercase().strip_prefix("dkim=").map(str::to_owned))?;
            let domain = clause.split_whitespace().find_map(|word| {
                let lower = word.to_ascii_lowercase();
                lower.strip_prefix("header.d=").or_else(|| lower.strip_prefix("header.i=@")).map(|d| {
                    d.trim_matches(|c: char| c == '"' || c == ')' || c == '(').trim_end_matches('.').to_owned()
                })
            });
            Some((result, domain))
        })
        .collect()
}

/// Whether to read a message whose headers are `envelope` and size `size`.
pub fn admit(envelope: &Envelope, size: Option<u32>, allowed: &[String], dkim: DkimPolicy) -> Result<(), Skip> {
    let domain = envelope.from_domain.as_deref().filter(|d| !d.is_empty()).ok_or(Skip::NoSender)?;
    let allowed_by = allowed
        .iter()
        .find(|entry| domain_allowed(domain, entry))
        .ok_or_else(|| Skip::NotAllowed(domain.to_owned()))?;
    if let Some(size) = size.filter(|size| *size > MAX_MESSAGE_BYTES) {
        return Err(Skip::TooLarge(size));
    }
    // A pass counts when it signs for the sender's domain, or for the
    // allowed domain it falls under (airlines sign as their parent domain).
    // A pass without a signing domain proves nothing.
    let passes = envelope.dkim.iter().any(|(result, signer)| {
        result == "pass"
            && signer.as_deref().is_some_and(|d| domain_allowed(domain, d) || domain_allowed(d, allowed_by))
    });
    match dkim {
        DkimPolicy::Off => Ok(()),
        DkimPolicy::IfPresent if envelope.dkim.is_empty() || passes => Ok(()),
        DkimPolicy::IfPresent => {
            let results: Vec<&str> = envelope.dkim.iter().map(|(result, _)| result.as_str()).collect();
            Err(Skip::Dkim(format!("no passing signature for `{domain}` (dkim={})", results.join(","))))
        }
        DkimPolicy::Required if passes => Ok(()),
        DkimPolicy::Required => Err(Skip::Dkim(format!("no passing signature for `{domain}`, and one is required"))),
    }
}

/// Decodes one fetched part (its transfer encoding and charset, as the
/// body structure gave them) into text.
pub fn decode_part(bytes: &[u8], content_type: &str, charset: Option<&str>, encoding: &str) -> Option<String> {
    let mut raw = Vec::with_capacity(bytes.len() + 128);
    raw.extend_from_slice(b"Content-Type: ");
    raw.extend_from_slice(content_type.as_bytes());
    if let Some(charset) = charset.filter(|c| c.bytes().all(|b| b.is_ascii_graphic() && b != b'"')) {
        raw.extend_from_slice(format!("; charset=\"{charset}\"").as_bytes());
    }
    if !encoding.is_empty() && encoding.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        raw.extend_from_slice(format!("\r\nContent-Transfer-Encoding: {encoding}").as_bytes());
    }
    raw.extend_from_slice(b"\r\n\r\n");
    raw.extend_from_slice(bytes);
    let message = MessageParser::new().parse(&raw)?;
    message.body_html(0).or_else(|| message.body_text(0)).map(|text| text.into_owned())
}

/// The reservations in one HTML or JSON-LD text.
pub fn extract(text: &str, is_json: bool, sent: Option<DateTime<FixedOffset>>) -> Vec<FoundReservation> {
    let sent_at = sent.unwrap_or_else(|| Utc::now().fixed_offset());
    let found = if is_json {
        longhaul_markup::extract_json_ld(text, sent_at)
    } else {
        longhaul_markup::extract_html(text, sent_at)
    };
    found.into_iter().map(|found| reservation(found, sent.map(|d| d.with_timezone(&Utc)))).collect()
}

/// A whole raw message, parsed and extracted: what a poll does with the
/// parts it fetches, in one call (the fixtures' tests and the bench use it).
pub fn extract_message(raw: &[u8]) -> (Envelope, Vec<FoundReservation>) {
    let envelope = envelope(raw);
    let Some(message) = MessageParser::new().parse(raw) else { return (envelope, Vec::new()) };
    let mut found = Vec::new();
    for part in message.parts.iter().take(256) {
        let Some(content_type) = part.content_type() else { continue };
        let subtype = content_type.subtype().unwrap_or_default().to_ascii_lowercase();
        let is_json = subtype == "ld+json";
        let is_html = content_type.ctype().eq_ignore_ascii_case("text") && subtype == "html";
        if !(is_json || is_html) {
            continue;
        }
        if part.len() > MAX_PART_BYTES as usize {
            continue;
        }
        if let Some(text) = part.text_contents() {
            found.extend(extract(text, is_json, envelope.date));
        } else if let Ok(text) = std::str::from_utf8(part.contents()) {
            found.extend(extract(text, is_json, envelope.date));
        }
    }
    (envelope, found)
}

/// A found reservation in the store's terms. A flight's city, when the
/// markup leaves it out, is its arrival airport's. Its times are placed
/// where they happen (see [`Zone::settle`]): a time written without an
/// offset is the wall clock of the departure airport, the arrival airport
/// or the city, and the zones are kept with the reservation.
fn reservation(found: Found, sent_at: Option<DateTime<Utc>>) -> FoundReservation {
    let kind = match found.kind {
        Kind::Flight => ReservationType::Flight,
        Kind::Lodging => ReservationType::Lodging,
        Kind::RentalCar => ReservationType::RentalCar,
        Kind::Train => ReservationType::Train,
        Kind::Bus => ReservationType::Bus,
        Kind::Event => ReservationType::Event,
        Kind::Food => ReservationType::Food,
    };
    let status = match found.status {
        Status::Confirmed => ReservationStatus::Confirmed,
        Status::Cancelled => ReservationStatus::Cancelled,
    };
    let arrival = found.destination.as_deref().and_then(airport);
    let city = found.city.or_else(|| arrival.map(|a| a.city.clone()));
    let country = found.country.or_else(|| arrival.map(|a| a.country.clone()));
    let (start_place, end_place) = Zone::of_place(
        kind,
        found.origin.as_deref(),
        found.destination.as_deref(),
        city.as_deref(),
        country.as_deref(),
    );
    let (starts_at, start_zone) = place(found.starts_at, found.starts_offset, start_place);
    let ends = found.ends_at.map(|at| place(at, found.ends_offset, end_place.or(start_place)));
    let ends = ends.filter(|(end, _)| *end >= starts_at);
    FoundReservation {
        dedupe_key: found.key,
        fields: ReservationFields {
            kind,
            reservation_number: found.reservation_number,
            provider: found.provider,
            status,
            starts_at,
            ends_at: ends.map(|(at, _)| at),
            details: found.details,
            city,
            country,
            origin: found.origin,
            destination: found.destination,
            start_zone,
            end_zone: ends.and_then(|(_, zone)| zone).or(end_place),
        }
        .placed(),
        sent_at,
    }
}

/// A markup time where it happens: `at` is the time as written read with
/// `offset` (or as UTC without one).
fn place(at: DateTime<Utc>, offset: Option<FixedOffset>, zone: Option<Zone>) -> (DateTime<Utc>, Option<Zone>) {
    let written = match offset {
        Some(offset) => at.with_timezone(&offset).naive_local(),
        None => at.naive_utc(),
    };
    Zone::settle(written, offset, zone).unwrap_or((at, offset.map(Zone::Fixed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(from: &str, auth: &str) -> Envelope {
        envelope(
            format!("From: Air <{from}>\r\nDate: Tue, 3 Nov 2026 10:00:00 +0100\r\n{auth}Subject: hi\r\n\r\n")
                .as_bytes(),
        )
    }

    #[test]
    fn headers_give_the_sender_domain_date_and_dkim_verdicts() {
        let env = header(
            "Bookings@Mail.Airline.Example",
            "Authentication-Results: mx.inbox.example; spf=pass smtp.mailfrom=airline.example;\r\n dkim=pass header.d=airline.example header.s=s1; dmarc=pass\r\n",
        );
        assert_eq!(env.from_domain.as_deref(), Some("mail.airline.example"));
        assert_eq!(env.date.map(|d| d.to_rfc3339()).as_deref(), Some("2026-11-03T10:00:00+01:00"));
        assert_eq!(env.dkim, vec![("pass".to_owned(), Some("airline.example".to_owned()))]);
    }

    #[test]
    fn the_allow_list_and_dkim_policy_decide_what_is_read() {
        let allowed = vec!["airline.example".to_owned()];
        let pass = header("a@airline.example", "Authentication-Results: mx; dkim=pass header.d=airline.example\r\n");
        let fail = header("a@airline.example", "Authentication-Results: mx; dkim=fail header.d=airline.example\r\n");
        let none = header("a@airline.example", "");
        let other = header("a@evil-airline.example", "");
        for policy in [DkimPolicy::Off, DkimPolicy::IfPresent, DkimPolicy::Required] {
            assert_eq!(admit(&pass, Some(1000), &allowed, policy), Ok(()));
            assert!(matches!(admit(&other, Some(1000), &allowed, policy), Err(Skip::NotAllowed(_))));
        }
        assert_eq!(admit(&fail, None, &allowed, DkimPolicy::Off), Ok(()));
        assert!(matches!(admit(&fail, None, &allowed, DkimPolicy::IfPresent), Err(Skip::Dkim(_))));
        assert_eq!(admit(&none, None, &allowed, DkimPolicy::IfPresent), Ok(()));
        assert!(matches!(admit(&none, None, &allowed, DkimPolicy::Required), Err(Skip::Dkim(_))));
        assert_eq!(
            admit(&pass, Some(MAX_MESSAGE_BYTES + 1), &allowed, DkimPolicy::Off),
            Err(Skip::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        // A pass for some other domain is no pass for this sender.
        let forged = header("a@airline.example", "Authentication-Results: mx; dkim=pass header.d=evil.example\r\n");
        assert!(matches!(admit(&forged, None, &allowed, DkimPolicy::IfPresent), Err(Skip::Dkim(_))));
        // A verdict the sender wrote below the receiving server's counts for nothing.
        let planted = header(
            "a@airline.example",
            "Authentication-Results: mx.inbox.example; dkim=fail header.d=airline.example\r\n\
             Authentication-Results: forged; dkim=pass header.d=airline.example\r\n",
        );
        assert!(matches!(admit(&planted, None, &allowed, DkimPolicy::IfPresent), Err(Skip::Dkim(_))));
        let unsigned = header("a@airline.example", "Authentication-Results: mx; dkim=pass\r\n");
        assert!(matches!(admit(&unsigned, None, &allowed, DkimPolicy::Required), Err(Skip::Dkim(_))));
        assert!(matches!(admit(&envelope(b"garbage"), None, &allowed, DkimPolicy::Off), Err(Skip::NoSender)));
    }

    #[test]
    fn parts_are_decoded_from_their_transfer_encoding_and_charset() {
        let qp = decode_part(b"<p>Caf=E9 =3D ok</p>", "text/html", Some("iso-8859-1"), "quoted-printable");
        assert_eq!(qp.as_deref(), Some("<p>Café = ok</p>"));
        let b64 = decode_part(b"PHA+aGk8L3A+", "text/html", Some("utf-8"), "base64");
        assert_eq!(b64.as_deref(), Some("<p>hi</p>"));
    }
}
