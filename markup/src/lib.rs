//! schema.org reservation markup in emails (JSON-LD and microdata), turned
//! into reservations. Pure: no I/O, no async, never panics on any input.
//!
//! # Input
//!
//! [`extract_html`] reads an HTML body: every
//! `<script type="application/ld+json">` block (type any case, parameters
//! allowed) and every top-level microdata item (`itemscope` + `itemtype`,
//! no `itemprop`). [`extract_json_ld`] reads one standalone JSON-LD text.
//! Both take the email's `Date` header (`sent`) for year inference.
//!
//! JSON-LD documents may be an object, an array (nested arrays too) or an
//! object with `@graph`; `@type` may be an array and may carry the
//! `http(s)://schema.org/` prefix. Sloppy JSON is repaired before parsing
//! where its intent is plain (entity-escaped JSON, entities inside string
//! values, trailing, doubled or missing commas, comments, `<!-- -->` and
//! CDATA wrappers, byte order marks and odd whitespace between tokens, raw
//! newlines in strings, keys without a value, several values in one block,
//! garbage after the value); what still does not parse is salvaged element
//! by element, so one broken reservation of an array, or the cut-off end of
//! a truncated block, costs only itself. A value with no whole part yields
//! nothing (an unclosed object is not closed by guesswork: its missing end
//! could have held anything, a cancellation included), and other blocks
//! still count. See the `jsonld` module.
//! Microdata is converted to the same JSON-LD shape (see the `microdata`
//! module) and normalised by the same code.
//!
//! # Reservations
//!
//! Recognised types: `FlightReservation`, `LodgingReservation`,
//! `RentalCarReservation`, `TrainReservation`, `BusReservation`,
//! `EventReservation`, `FoodEstablishmentReservation`. Anything else is
//! ignored, and only the containers above are searched. A `reservationFor`
//! array gives one [`Found`] per element (the legs of a multi-leg booking
//! share the reservation number, but each has its own key). Passengers and
//! tickets are not items: Gmail's markup gives each passenger of a booking
//! (each ticket of an event) its own reservation object with the same
//! number and leg, and those are one reservation (one key), merged as
//! below.
//!
//! - `reservation_number`: `reservationNumber`, else `reservationId`, else
//!   the first `reservedTicket.ticketNumber`, else empty; trimmed.
//! - `provider` (each `X.name` may also be the plain string `X`): flight:
//!   `reservationFor.airline.name`, `airline.iataCode`, `provider.name`,
//!   `broker.name`; lodging and food: `reservationFor.name`; rental car:
//!   `reservationFor.rentalCompany.name`, `provider.name`,
//!   `reservationFor.brand.name`, `broker.name`; train:
//!   `reservationFor.provider.name`, `reservationFor.trainCompany.name`,
//!   `provider.name`, `broker.name`; bus: likewise with `busCompany`
//!   (Gmail's name for the operator); event: `provider.name`, `broker.name`,
//!   `reservationFor.organizer.name`, `reservationFor.location.name`. The
//!   first present wins, and is then made canonical with
//!   [`canonical_provider`] ([`canonical_airline`] for flights, so an
//!   airline code alone gives its airline): `LATAM`, `Latam Airlines Group`
//!   and `LA` are `LATAM Airlines`; a name the vendors table does not know
//!   is only trimmed, its inner whitespace collapsed.
//! - `status`: cancelled when `reservationStatus` ends with
//!   `ReservationCancelled` or is `Cancelled` (any case, with or without the
//!   schema.org URL), else confirmed.
//! - `starts_at` / `ends_at`: flight, train, bus: `reservationFor`'s
//!   `departureTime` / `arrivalTime`; lodging: `checkinTime` or
//!   `checkinDate` / `checkoutTime` or `checkoutDate`; rental car:
//!   `pickupTime` / `dropoffTime`; event: `reservationFor`'s `startDate` /
//!   `endDate`; food: `startTime` or `startDate` / `endTime` or `endDate` (on
//!   the reservation). A time with an offset is converted to UTC (and the
//!   offset kept in `starts_offset` / `ends_offset`); without one it is UTC
//!   wall-clock, for the caller to place where it happens; a date alone is
//!   midnight, likewise. Without a year
//!   (`--03-04`, `03-04`, `03-04T20:15`) the year is `sent`'s, or the next
//!   one when that would be more than 60 days before `sent`. No parseable
//!   start: the reservation is dropped.
//! - `origin` / `destination` (flights): the airports' `iataCode` when it is
//!   three ASCII letters, upper-cased.
//! - `city` / `country`: `addressLocality` / `addressCountry` of lodging and
//!   food `reservationFor.address`, rental car `pickupLocation.address`,
//!   train `arrivalStation.address`, bus `arrivalBusStop.address`, event
//!   `reservationFor.location.address`, flight `arrivalAirport.address`. A
//!   plain-text address gives neither. The country is a two-letter code (or
//!   a `Country` whose name is one), upper-cased.
//! - `details`: the reservation object, `@type`s without URL prefix; for one
//!   leg of a multi-leg booking, with that leg alone as `reservationFor`.
//! - `key`: `kind|provider|number|item`, the same for the same reservation
//!   whatever the markup or email. Provider: lower-case alphanumerics, for
//!   flights the airline code (`airline.iataCode`, else the flight number's
//!   designator) when known; otherwise the canonical provider, so two
//!   spellings of one vendor give one key. Number: upper-case, spaces
//!   removed. Item:
//!   flight: airline code + flight number digits + departure date as
//!   written (before UTC conversion), or origin-destination + date without
//!   a flight number; train, bus: `trainNumber` / `busNumber` + departure
//!   date, else the departure station's / stop's name + date; event: event
//!   name + start date; lodging, rental car, food: empty (one per
//!   reservation number), or the start date when there is no number.
//!
//! Within one call, reservations with the same key are returned once,
//! merged: later non-empty fields win and `details` are merged shallowly.
//! JSON-LD blocks are read first, in document order, then microdata items,
//! so for the same reservation microdata fields win over JSON-LD ones.
//!
//! # Caps
//!
//! Every call is bounded, whatever the input:
//!
//! - [`MAX_INPUT_BYTES`] (5 MiB): longer input is cut there (at a character
//!   boundary) and the rest ignored.
//! - [`MAX_DEPTH`] (64): containers, nested microdata items and `@type`
//!   clean-up go no deeper; JSON deeper than serde_json's 128 levels is not
//!   parsed at all. All HTML walks are iterative.
//! - [`MAX_RESERVATIONS`] (1,000): reservations (legs) looked at per call.
//! - [`MAX_TREE_WORK`]: html5ever's tree builder is quadratic on deeply
//!   nested or misnested HTML; a linear pre-scan estimates that work and,
//!   above the cap, no DOM is built: JSON-LD is still read (it needs no
//!   DOM), microdata is skipped.
//! - [`MAX_VALUE_BYTES`] per microdata value and [`MAX_MICRODATA_BYTES`]
//!   for all microdata values of a call.
//! - Salvaging a broken JSON-LD value looks 8 container levels deep and
//!   parses at most 4,096 containers alone, each once: a bounded number of
//!   passes over the block, however it is broken.
//!
//! # Cost
//!
//! Text that contains neither `application/ld+json` nor `itemscope` (any
//! case) is rejected after one substring search. Otherwise one linear,
//! tokenizer-like scan (the `html` module) finds the JSON-LD blocks, which
//! need no DOM, and the byte ranges of the top-level microdata items that
//! name a reservation type. Only those ranges are parsed by `scraper`
//! (html5ever), each once, as fragments: they give the same microdata as
//! the whole document (a test checks this on damaged HTML), at a fraction of
//! the cost. An item on `<html>`/`<head>`/`<body>` makes it parse the whole
//! document instead.

mod html;
mod jsonld;
mod microdata;
mod normalize;
mod schema;
mod time;
mod vendors;

#[cfg(test)]
mod tests;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;
pub use vendors::{canonical_airline, canonical_provider, fold as fold_name};

/// Input beyond this many bytes is ignored.
pub const MAX_INPUT_BYTES: usize = 5 * 1024 * 1024;

/// Nesting levels followed in containers, microdata items and `details`.
pub const MAX_DEPTH: usize = 64;

/// Reservations (legs) looked at per call; later ones are ignored.
pub const MAX_RESERVATIONS: usize = 1_000;

/// Estimated html5ever tree-building steps above which no DOM is built.
/// Adversarial HTML just under it parses in about 0.1 s at worst; ordinary
/// emails need well under 1% of it.
pub const MAX_TREE_WORK: u64 = 10_000_000;

/// Bytes kept of one microdata property value.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Bytes of microdata values (and copies of them) kept per call.
pub const MAX_MICRODATA_BYTES: usize = 8 * 1024 * 1024;

/// What was booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Flight,
    Lodging,
    RentalCar,
    Train,
    Bus,
    Event,
    Food,
}

impl Kind {
    /// `flight`, `lodging`, `rental_car`, `train`, `bus`, `event` or `food`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Flight => "flight",
            Kind::Lodging => "lodging",
            Kind::RentalCar => "rental_car",
            Kind::Train => "train",
            Kind::Bus => "bus",
            Kind::Event => "event",
            Kind::Food => "food",
        }
    }
}

/// Whether the reservation stands or was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Confirmed,
    Cancelled,
}

impl Status {
    /// `confirmed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// One reservation found in the markup.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: Kind,
    /// May be empty when the markup gives none.
    pub reservation_number: String,
    pub provider: String,
    pub status: Status,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The offsets written with the start and end times; None when the
    /// markup gave none (the time is then its wall-clock read as UTC, for
    /// the caller to place: `starts_at` + offset is always the time as
    /// written).
    pub starts_offset: Option<FixedOffset>,
    pub ends_offset: Option<FixedOffset>,
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// Flights: IATA airport codes, upper case.
    pub origin: Option<String>,
    pub destination: Option<String>,
    /// The reservation as a JSON-LD-style object.
    pub details: Value,
    /// The dedupe identity: same provider, reservation number and item.
    pub key: String,
}

/// Every reservation in an HTML body (JSON-LD blocks and microdata).
pub fn extract_html(html: &str, sent: DateTime<FixedOffset>) -> Vec<Found> {
    let html = clamp(html);
    let (has_json_ld, has_microdata) = markers(html);
    if !has_json_ld && !has_microdata {
        return Vec::new();
    }
    let scan = html::scan(html, has_microdata);
    let mut out = normalize::Collector::new(sent);
    for block in &scan.json_ld {
        for document in jsonld::parse(block) {
            out.add_document(&document);
        }
        if out.is_full() {
            return out.finish();
        }
    }
    if scan.regions.is_empty() || scan.too_complex {
        return out.finish();
    }
    let mut budget = microdata::Budget::default();
    if scan.needs_document {
        let doc = scraper::Html::parse_document(html);
        for item in microdata::items(&doc, &mut budget) {
            out.add_document(&item);
        }
        return out.finish();
    }
    for region in &scan.regions {
        let Some(part) = html.get(region.range.clone()) else { continue };
        let doc = if region.context.is_empty() {
            scraper::Html::parse_fragment(part)
        } else {
            scraper::Html::parse_fragment(&format!("{}{part}", region.context))
        };
        for item in microdata::items(&doc, &mut budget) {
            out.add_document(&item);
        }
        if out.is_full() {
            break;
        }
    }
    out.finish()
}

/// Every reservation in a standalone JSON-LD text.
pub fn extract_json_ld(text: &str, sent: DateTime<FixedOffset>) -> Vec<Found> {
    let mut out = normalize::Collector::new(sent);
    for document in jsonld::parse(clamp(text)) {
        out.add_document(&document);
    }
    out.finish()
}

/// The input up to [`MAX_INPUT_BYTES`], cut at a character boundary.
fn clamp(text: &str) -> &str {
    if text.len() <= MAX_INPUT_BYTES {
        return text;
    }
    let mut end = MAX_INPUT_BYTES;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// Whether the text mentions `application/ld+json` and `itemscope`, in any
/// case: the cheap test that lets most emails skip everything else. A
/// lower-cased copy lets the standard library's vectorised substring search
/// do the work, several times faster than a byte loop folding case.
fn markers(text: &str) -> (bool, bool) {
    let lower = text.to_ascii_lowercase();
    (lower.contains("application/ld+json"), lower.contains("itemscope"))
}
