//! End-to-end tests: HTML and JSON-LD in, reservations out.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Value};

use crate::*;

/// The email's Date header used unless a test needs another.
const SENT: &str = "2027-02-10T09:00:00+01:00";

fn sent_at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn sent() -> DateTime<FixedOffset> {
    sent_at(SENT)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An HTML email around JSON-LD blocks.
fn email(blocks: &[&str]) -> String {
    let mut html =
        String::from("<!DOCTYPE html><html><head><meta charset=utf-8><title>Your booking</title></head><body>");
    for block in blocks {
        html.push_str("<script type=\"application/ld+json\">");
        html.push_str(block);
        html.push_str("</script>");
    }
    html.push_str("<table><tr><td><p>Thank you for booking with us.</td></tr></table></body></html>");
    html
}

fn only(found: Vec<Found>) -> Found {
    assert_eq!(found.len(), 1, "expected one reservation, got {found:#?}");
    found.into_iter().next().unwrap()
}

fn html_one(html: &str) -> Found {
    only(extract_html(html, sent()))
}

/// The fields that must agree between two markups of one reservation.
fn summary(f: &Found) -> String {
    format!(
        "{:?} {:?} num={} prov={} {}..{:?} city={:?} country={:?} {:?}->{:?} key={}",
        f.kind,
        f.status,
        f.reservation_number,
        f.provider,
        f.starts_at,
        f.ends_at,
        f.city,
        f.country,
        f.origin,
        f.destination,
        f.key
    )
}

const FLIGHT_JSON: &str = r#"{
  "@context": "http://schema.org",
  "@type": "FlightReservation",
  "reservationNumber": "RXJ34P",
  "reservationStatus": "http://schema.org/ReservationConfirmed",
  "underName": {"@type": "Person", "name": "Eva Green"},
  "reservationFor": {
    "@type": "Flight",
    "flightNumber": "110",
    "airline": {"@type": "Airline", "name": "United", "iataCode": "UA"},
    "departureAirport": {"@type": "Airport", "name": "San Francisco Airport", "iataCode": "SFO"},
    "departureTime": "2027-03-04T20:15:00-08:00",
    "arrivalAirport": {
      "@type": "Airport", "name": "John F. Kennedy International Airport", "iataCode": "JFK",
      "address": {"@type": "PostalAddress", "addressLocality": "New York", "addressCountry": "us"}
    },
    "arrivalTime": "2027-03-05T06:30:00-05:00"
  }
}"#;

const FLIGHT_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/FlightReservation">
  <meta itemprop="reservationNumber" content="RXJ34P"/>
  <link itemprop="reservationStatus" href="http://schema.org/ReservationConfirmed"/>
  <div itemprop="underName" itemscope itemtype="http://schema.org/Person">
    <meta itemprop="name" content="Eva Green"/>
  </div>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Flight">
    <meta itemprop="flightNumber" content="110"/>
    <div itemprop="airline" itemscope itemtype="http://schema.org/Airline">
      <meta itemprop="name" content="United"/>
      <meta itemprop="iataCode" content="UA"/>
    </div>
    <div itemprop="departureAirport" itemscope itemtype="http://schema.org/Airport">
      <meta itemprop="name" content="San Francisco Airport"/>
      <meta itemprop="iataCode" content="SFO"/>
    </div>
    <meta itemprop="departureTime" content="2027-03-04T20:15:00-08:00"/>
    <div itemprop="arrivalAirport" itemscope itemtype="http://schema.org/Airport">
      <meta itemprop="name" content="John F. Kennedy International Airport"/>
      <meta itemprop="iataCode" content="JFK"/>
      <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
        <span itemprop="addressLocality">New York</span>
        <meta itemprop="addressCountry" content="us"/>
      </div>
    </div>
    <meta itemprop="arrivalTime" content="2027-03-05T06:30:00-05:00"/>
  </div>
</div>"#;

fn microdata_email(items: &str) -> String {
    format!("<html><body><p>Your trip</p>{items}<p>Bye</p></body></html>")
}

fn check_flight(f: &Found) {
    assert_eq!(f.kind, Kind::Flight);
    assert_eq!(f.reservation_number, "RXJ34P");
    assert_eq!(f.provider, "United Airlines", "canonical, from \"United\"");
    assert_eq!(f.status, Status::Confirmed);
    assert_eq!(f.starts_at, utc("2027-03-05T04:15:00Z"));
    assert_eq!(f.ends_at, Some(utc("2027-03-05T11:30:00Z")));
    assert_eq!(f.origin.as_deref(), Some("SFO"));
    assert_eq!(f.destination.as_deref(), Some("JFK"));
    assert_eq!(f.city.as_deref(), Some("New York"));
    assert_eq!(f.country.as_deref(), Some("US"));
    // The departure date as written (4 March), not in UTC (5 March).
    assert_eq!(f.key, "flight|ua|RXJ34P|ua110@2027-03-04");
    assert_eq!(f.details["@type"], "FlightReservation");
    assert_eq!(f.details["reservationFor"]["airline"]["name"], "United");
    assert_eq!(f.details["underName"]["name"], "Eva Green");
}

// ---------------------------------------------------------------- kinds

#[test]
fn flight_json_ld() {
    check_flight(&html_one(&email(&[FLIGHT_JSON])));
    check_flight(&only(extract_json_ld(FLIGHT_JSON, sent())));
}

#[test]
fn flight_microdata() {
    check_flight(&html_one(&microdata_email(FLIGHT_MICRODATA)));
}

#[test]
fn same_flight_in_json_ld_and_microdata_gives_the_same_key() {
    let a = html_one(&email(&[FLIGHT_JSON]));
    let b = html_one(&microdata_email(FLIGHT_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
    // Both in one email: one reservation.
    let both = format!("{}{}", email(&[FLIGHT_JSON]), FLIGHT_MICRODATA);
    check_flight(&html_one(&both));
}

#[test]
fn flight_key_from_designator_matches_airline_code() {
    // One sender writes the airline code, another only "UA 0110".
    let a = json!({"@type": "FlightReservation", "reservationNumber": "rxj 34p",
        "reservationFor": {"flightNumber": "UA 0110", "airline": "United Airlines",
            "departureTime": "2027-03-04T20:15:00-08:00"}});
    let f = only(extract_json_ld(&a.to_string(), sent()));
    assert_eq!(f.key, "flight|ua|RXJ34P|ua110@2027-03-04");
    assert_eq!(f.provider, "United Airlines");
    assert_eq!(f.reservation_number, "rxj 34p");
}

#[test]
fn flight_without_flight_number_keys_on_route() {
    let a = json!({"@type": "FlightReservation", "reservationNumber": "X",
        "reservationFor": {"airline": {"name": "Small Air"},
            "departureAirport": {"iataCode": "sfo"}, "arrivalAirport": {"iataCode": "LAXX"},
            "departureTime": "2027-03-04T08:00"}});
    let f = only(extract_json_ld(&a.to_string(), sent()));
    assert_eq!(f.origin.as_deref(), Some("SFO"));
    assert_eq!(f.destination, None);
    assert_eq!(f.key, "flight|smallair|X|SFO-@2027-03-04");
}

const LODGING_JSON: &str = r#"{
  "@context": "https://schema.org",
  "@type": "LodgingReservation",
  "reservationNumber": " abc456 ",
  "reservationStatus": "http://schema.org/Confirmed",
  "underName": {"@type": "Person", "name": "John Smith"},
  "reservationFor": {
    "@type": "LodgingBusiness",
    "name": "Hilton San Francisco Union Square",
    "address": {
      "@type": "PostalAddress",
      "streetAddress": "333 O'Farrell St",
      "addressLocality": "San Francisco",
      "addressRegion": "CA",
      "postalCode": "94102",
      "addressCountry": {"@type": "Country", "name": "US"}
    },
    "telephone": "415-771-1400"
  },
  "checkinDate": "2027-04-11T16:00:00-08:00",
  "checkoutDate": "2027-04-13T11:00:00-08:00"
}"#;

const LODGING_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/LodgingReservation">
  <meta itemprop="reservationNumber" content="abc456"/>
  <link itemprop="reservationStatus" href="http://schema.org/Confirmed"/>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/LodgingBusiness">
    <h2 itemprop="name">Hilton San Francisco Union Square</h2>
    <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
      <span itemprop="streetAddress">333 O'Farrell St</span>,
      <span itemprop="addressLocality">San Francisco</span>
      <div itemprop="addressCountry" itemscope itemtype="http://schema.org/Country"><meta itemprop="name" content="US"></div>
    </div>
  </div>
  <time itemprop="checkinDate" datetime="2027-04-11T16:00:00-08:00">April 11</time>
  <time itemprop="checkoutDate" datetime="2027-04-13T11:00:00-08:00">April 13</time>
</div>"#;

#[test]
fn lodging() {
    let a = html_one(&email(&[LODGING_JSON]));
    assert_eq!(a.kind, Kind::Lodging);
    assert_eq!(a.reservation_number, "abc456");
    assert_eq!(a.provider, "Hilton San Francisco Union Square");
    assert_eq!(a.starts_at, utc("2027-04-12T00:00:00Z"));
    assert_eq!(a.ends_at, Some(utc("2027-04-13T19:00:00Z")));
    assert_eq!(a.city.as_deref(), Some("San Francisco"));
    assert_eq!(a.country.as_deref(), Some("US"));
    assert_eq!((a.origin.as_deref(), a.destination.as_deref()), (None, None));
    assert_eq!(a.key, "lodging|hiltonsanfranciscounionsquare|ABC456|");
    assert_eq!(a.details["reservationFor"]["@type"], "LodgingBusiness");

    let b = html_one(&microdata_email(LODGING_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn lodging_checkin_time_wins_over_date() {
    let j = json!({"@type": "LodgingReservation", "reservationNumber": "1", "reservationFor": {"name": "Inn"},
        "checkinTime": "2027-04-11T15:00:00Z", "checkinDate": "2027-04-11", "checkoutDate": "2027-04-12"});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.starts_at, utc("2027-04-11T15:00:00Z"));
    assert_eq!(f.ends_at, Some(utc("2027-04-12T00:00:00Z")));
    // An unparseable checkinTime falls back to checkinDate.
    let j = json!({"@type": "LodgingReservation", "reservationFor": "Inn",
        "checkinTime": "3pm", "checkinDate": "2027-04-11"});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.starts_at, utc("2027-04-11T00:00:00Z"));
    assert_eq!(f.provider, "Inn");
    assert_eq!(f.key, "lodging|inn||2027-04-11");
}

const RENTAL_JSON: &str = r#"{
  "@context": "http://schema.org",
  "@type": "RentalCarReservation",
  "reservationNumber": "546323",
  "reservationStatus": "http://schema.org/ReservationConfirmed",
  "underName": {"@type": "Person", "name": "John Smith"},
  "reservationFor": {
    "@type": "Car",
    "name": "Economy Class Car",
    "model": "Civic",
    "brand": {"@type": "Brand", "name": "Honda"},
    "rentalCompany": {"@type": "Organization", "name": "Hertz"}
  },
  "pickupLocation": {
    "@type": "Place",
    "name": "Hertz San Diego Airport",
    "address": {"@type": "PostalAddress", "addressLocality": "San Diego", "addressCountry": "US"}
  },
  "pickupTime": "2027-08-05T16:00:00-07:00",
  "dropoffLocation": {"@type": "Place", "name": "Hertz LAX"},
  "dropoffTime": "2027-08-06T20:00:00-07:00"
}"#;

const RENTAL_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/RentalCarReservation">
  <meta itemprop="reservationNumber" content="546323"/>
  <link itemprop="reservationStatus" href="http://schema.org/ReservationConfirmed"/>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Car">
    <meta itemprop="name" content="Economy Class Car"/>
    <div itemprop="brand" itemscope itemtype="http://schema.org/Brand"><meta itemprop="name" content="Honda"/></div>
    <div itemprop="rentalCompany" itemscope itemtype="http://schema.org/Organization"><meta itemprop="name" content="Hertz"/></div>
  </div>
  <div itemprop="pickupLocation" itemscope itemtype="http://schema.org/Place">
    <meta itemprop="name" content="Hertz San Diego Airport"/>
    <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
      <meta itemprop="addressLocality" content="San Diego"/>
      <meta itemprop="addressCountry" content="US"/>
    </div>
  </div>
  <meta itemprop="pickupTime" content="2027-08-05T16:00:00-07:00"/>
  <meta itemprop="dropoffTime" content="2027-08-06T20:00:00-07:00"/>
</div>"#;

#[test]
fn rental_car() {
    let a = html_one(&email(&[RENTAL_JSON]));
    assert_eq!(a.kind, Kind::RentalCar);
    assert_eq!(a.provider, "Hertz");
    assert_eq!(a.starts_at, utc("2027-08-05T23:00:00Z"));
    assert_eq!(a.ends_at, Some(utc("2027-08-07T03:00:00Z")));
    assert_eq!(a.city.as_deref(), Some("San Diego"));
    assert_eq!(a.country.as_deref(), Some("US"));
    assert_eq!(a.key, "rental_car|hertz|546323|");
    let b = html_one(&microdata_email(RENTAL_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn rental_car_provider_fallbacks() {
    let base = json!({"@type": "RentalCarReservation", "reservationNumber": "1", "pickupTime": "2027-08-05",
        "reservationFor": {"brand": {"name": "Honda"}}, "broker": {"name": "Expedia"}});
    assert_eq!(only(extract_json_ld(&base.to_string(), sent())).provider, "Honda");
    let mut with_provider = base.clone();
    with_provider["provider"] = json!("Sixt");
    assert_eq!(only(extract_json_ld(&with_provider.to_string(), sent())).provider, "Sixt");
    let mut broker_only = base;
    broker_only["reservationFor"] = json!({"@type": "Car"});
    assert_eq!(only(extract_json_ld(&broker_only.to_string(), sent())).provider, "Expedia");
}

const TRAIN_JSON: &str = r#"{
  "@context": "http://schema.org",
  "@type": "TrainReservation",
  "reservationNumber": "AB3XY2",
  "reservationStatus": "http://schema.org/ReservationConfirmed",
  "reservationFor": {
    "@type": "TrainTrip",
    "trainNumber": "ICE 599",
    "provider": {"@type": "Organization", "name": "Deutsche Bahn"},
    "departureStation": {"@type": "TrainStation", "name": "München Hbf"},
    "departureTime": "2027-01-04T10:30:00+01:00",
    "arrivalStation": {
      "@type": "TrainStation", "name": "Paris Gare de Lyon",
      "address": {"@type": "PostalAddress", "addressLocality": "Paris", "addressCountry": "FR"}
    },
    "arrivalTime": "2027-01-04T16:10:00+01:00"
  }
}"#;

const TRAIN_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/TrainReservation">
  <meta itemprop="reservationNumber" content="AB3XY2"/>
  <link itemprop="reservationStatus" href="http://schema.org/ReservationConfirmed"/>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/TrainTrip">
    <meta itemprop="trainNumber" content="ICE599"/>
    <div itemprop="provider" itemscope itemtype="http://schema.org/Organization"><meta itemprop="name" content="Deutsche Bahn"/></div>
    <div itemprop="departureStation" itemscope itemtype="http://schema.org/TrainStation"><meta itemprop="name" content="München Hbf"/></div>
    <meta itemprop="departureTime" content="2027-01-04T10:30:00+01:00"/>
    <div itemprop="arrivalStation" itemscope itemtype="http://schema.org/TrainStation">
      <meta itemprop="name" content="Paris Gare de Lyon"/>
      <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
        <meta itemprop="addressLocality" content="Paris"/><meta itemprop="addressCountry" content="FR"/>
      </div>
    </div>
    <meta itemprop="arrivalTime" content="2027-01-04T16:10:00+01:00"/>
  </div>
</div>"#;

#[test]
fn train() {
    let a = html_one(&email(&[TRAIN_JSON]));
    assert_eq!(a.kind, Kind::Train);
    assert_eq!(a.provider, "Deutsche Bahn");
    assert_eq!(a.starts_at, utc("2027-01-04T09:30:00Z"));
    assert_eq!(a.city.as_deref(), Some("Paris"));
    assert_eq!(a.country.as_deref(), Some("FR"));
    assert_eq!(a.key, "train|deutschebahn|AB3XY2|ice599@2027-01-04");
    let b = html_one(&microdata_email(TRAIN_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn train_without_number_keys_on_departure_station() {
    let j = json!({"@type": "TrainReservation", "reservationNumber": "Q",
        "reservationFor": {"departureStation": {"name": "München Hbf"}, "departureTime": "2027-01-04T10:30"},
        "provider": "ÖBB"});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.provider, "ÖBB");
    assert_eq!(f.key, "train|öbb|Q|münchenhbf@2027-01-04");
}

const BUS_JSON: &str = r#"{
  "@context": "http://schema.org",
  "@type": "BusReservation",
  "reservationNumber": "123456",
  "reservationStatus": "http://schema.org/ReservationConfirmed",
  "reservationFor": {
    "@type": "BusTrip",
    "busNumber": "4021",
    "provider": {"@type": "Organization", "name": "FlixBus"},
    "departureBusStop": {"@type": "BusStop", "name": "Port Authority, NYC"},
    "departureTime": "2027-01-04T12:30:00-05:00",
    "arrivalBusStop": {"@type": "BusStop", "name": "Boston South Station",
      "address": {"@type": "PostalAddress", "addressLocality": "Boston", "addressCountry": "USA"}},
    "arrivalTime": "2027-01-04T17:10:00-05:00"
  }
}"#;

const BUS_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/BusReservation">
  <meta itemprop="reservationNumber" content="123456"/>
  <link itemprop="reservationStatus" href="http://schema.org/ReservationConfirmed"/>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/BusTrip">
    <meta itemprop="busNumber" content="4021"/>
    <div itemprop="provider" itemscope itemtype="http://schema.org/Organization"><meta itemprop="name" content="FlixBus"/></div>
    <div itemprop="departureBusStop" itemscope itemtype="http://schema.org/BusStop"><meta itemprop="name" content="Port Authority, NYC"/></div>
    <meta itemprop="departureTime" content="2027-01-04T12:30:00-05:00"/>
    <div itemprop="arrivalBusStop" itemscope itemtype="http://schema.org/BusStop">
      <meta itemprop="name" content="Boston South Station"/>
      <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
        <meta itemprop="addressLocality" content="Boston"/><meta itemprop="addressCountry" content="USA"/>
      </div>
    </div>
    <meta itemprop="arrivalTime" content="2027-01-04T17:10:00-05:00"/>
  </div>
</div>"#;

#[test]
fn bus() {
    let a = html_one(&email(&[BUS_JSON]));
    assert_eq!(a.kind, Kind::Bus);
    assert_eq!(a.provider, "FlixBus");
    assert_eq!(a.starts_at, utc("2027-01-04T17:30:00Z"));
    assert_eq!(a.city.as_deref(), Some("Boston"));
    // "USA" is not a two-letter code.
    assert_eq!(a.country, None);
    assert_eq!(a.key, "bus|flixbus|123456|4021@2027-01-04");
    let b = html_one(&microdata_email(BUS_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn bus_and_train_company_are_the_operator_after_provider() {
    // Gmail's own examples name the operator `busCompany` (and
    // `trainCompany`); `reservationFor.provider` still comes first.
    let j = json!({"@type": "BusReservation", "reservationNumber": "1",
        "reservationFor": {"busCompany": {"name": "Bolt NYC"}, "departureTime": "2027-01-04T12:30:00-05:00"}});
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).provider, "Bolt NYC");
    let j = json!({"@type": "BusReservation", "reservationNumber": "1", "broker": "Busbud",
        "reservationFor": {"provider": "FLIXBUS", "busCompany": "Bolt NYC", "departureTime": "2027-01-04T12:30:00Z"}});
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).provider, "FlixBus");
    let j = json!({"@type": "TrainReservation", "reservationNumber": "1", "broker": "Trainline",
        "reservationFor": {"trainCompany": {"name": "DB Fernverkehr"}, "departureTime": "2027-01-04T12:30:00Z"}});
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).provider, "Deutsche Bahn");
}

const EVENT_JSON: &str = r#"{
  "@context": "http://schema.org",
  "@type": "EventReservation",
  "reservationNumber": "E123456789",
  "reservationStatus": "http://schema.org/ReservationConfirmed",
  "underName": "John Smith",
  "reservationFor": {
    "@type": "MusicEvent",
    "name": "Foo Fighters Concert",
    "startDate": "2027-03-06T19:30:00-08:00",
    "endDate": "2027-03-06T23:00:00-08:00",
    "organizer": {"@type": "Organization", "name": "Live Nation"},
    "location": {
      "@type": "Place",
      "name": "AT&T Park",
      "address": {"@type": "PostalAddress", "addressLocality": "San Francisco", "addressCountry": "US"}
    }
  }
}"#;

const EVENT_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/EventReservation">
  <meta itemprop="reservationNumber" content="E123456789"/>
  <link itemprop="reservationStatus" href="http://schema.org/ReservationConfirmed"/>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/MusicEvent">
    <span itemprop="name">Foo Fighters Concert</span>
    <time itemprop="startDate" datetime="2027-03-06T19:30:00-08:00">Sat, March 6</time>
    <meta itemprop="endDate" content="2027-03-06T23:00:00-08:00"/>
    <div itemprop="organizer" itemscope itemtype="http://schema.org/Organization"><meta itemprop="name" content="Live Nation"/></div>
    <div itemprop="location" itemscope itemtype="http://schema.org/Place">
      <meta itemprop="name" content="AT&amp;T Park"/>
      <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
        <meta itemprop="addressLocality" content="San Francisco"/><meta itemprop="addressCountry" content="US"/>
      </div>
    </div>
  </div>
</div>"#;

#[test]
fn event() {
    let a = html_one(&email(&[EVENT_JSON]));
    assert_eq!(a.kind, Kind::Event);
    assert_eq!(a.provider, "Live Nation");
    assert_eq!(a.starts_at, utc("2027-03-07T03:30:00Z"));
    assert_eq!(a.ends_at, Some(utc("2027-03-07T07:00:00Z")));
    assert_eq!(a.city.as_deref(), Some("San Francisco"));
    assert_eq!(a.key, "event|livenation|E123456789|foofightersconcert@2027-03-06");
    assert_eq!(a.details["reservationFor"]["@type"], "MusicEvent");
    let b = html_one(&microdata_email(EVENT_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn event_provider_order() {
    let mut j: Value = serde_json::from_str(EVENT_JSON).unwrap();
    j["broker"] = json!({"name": "Ticketmaster"});
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).provider, "Ticketmaster");
    j["provider"] = json!({"name": "Venue Box Office"});
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).provider, "Venue Box Office");
    let mut j: Value = serde_json::from_str(EVENT_JSON).unwrap();
    j["reservationFor"].as_object_mut().unwrap().remove("organizer");
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).provider, "AT&T Park");
}

const FOOD_JSON: &str = r#"{
  "@context": "http://schema.org",
  "@type": "FoodEstablishmentReservation",
  "reservationNumber": "OT12345",
  "reservationStatus": "http://schema.org/Confirmed",
  "underName": {"@type": "Person", "name": "John Smith"},
  "reservationFor": {
    "@type": "FoodEstablishment",
    "name": "Wagamama",
    "address": {"@type": "PostalAddress", "streetAddress": "1 Tavistock Street",
      "addressLocality": "London", "addressCountry": "gb"}
  },
  "startTime": "2027-04-10T19:30:00+01:00",
  "partySize": "2"
}"#;

const FOOD_MICRODATA: &str = r#"
<div itemscope itemtype="http://schema.org/FoodEstablishmentReservation">
  <meta itemprop="reservationNumber" content="OT12345"/>
  <link itemprop="reservationStatus" href="http://schema.org/Confirmed"/>
  <div itemprop="reservationFor" itemscope itemtype="http://schema.org/FoodEstablishment">
    <meta itemprop="name" content="Wagamama"/>
    <div itemprop="address" itemscope itemtype="http://schema.org/PostalAddress">
      <meta itemprop="addressLocality" content="London"/><meta itemprop="addressCountry" content="gb"/>
    </div>
  </div>
  <meta itemprop="startTime" content="2027-04-10T19:30:00+01:00"/>
  <meta itemprop="partySize" content="2"/>
</div>"#;

#[test]
fn food() {
    let a = html_one(&email(&[FOOD_JSON]));
    assert_eq!(a.kind, Kind::Food);
    assert_eq!(a.provider, "Wagamama");
    assert_eq!(a.starts_at, utc("2027-04-10T18:30:00Z"));
    assert_eq!(a.ends_at, None);
    assert_eq!(a.city.as_deref(), Some("London"));
    assert_eq!(a.country.as_deref(), Some("GB"));
    assert_eq!(a.key, "food|wagamama|OT12345|");
    let b = html_one(&microdata_email(FOOD_MICRODATA));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn food_start_date_fallback() {
    let j = json!({"@type": "FoodEstablishmentReservation", "reservationFor": {"name": "Chez Nous"},
        "startDate": "2027-04-10T20:00:00"});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.starts_at, utc("2027-04-10T20:00:00Z"));
    assert_eq!(f.key, "food|cheznous||2027-04-10");
}

#[test]
fn every_kind_in_one_email() {
    let html = format!(
        "{}{}{}{}",
        email(&[FLIGHT_JSON, LODGING_JSON, RENTAL_JSON, TRAIN_JSON]),
        BUS_MICRODATA,
        EVENT_MICRODATA,
        FOOD_MICRODATA
    );
    let kinds: Vec<Kind> = extract_html(&html, sent()).iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [Kind::Flight, Kind::Lodging, Kind::RentalCar, Kind::Train, Kind::Bus, Kind::Event, Kind::Food]);
}

// ------------------------------------------------------------ multi-leg

#[test]
fn multi_leg_reservation_for_array() {
    let j = json!({
        "@context": "http://schema.org",
        "@type": "FlightReservation",
        "reservationNumber": "XXX007",
        "reservationFor": [
            {"@type": "Flight", "flightNumber": "1234", "airline": {"iataCode": "AB"},
             "departureAirport": {"iataCode": "SXF"}, "arrivalAirport": {"iataCode": "TXL"},
             "departureTime": "2027-05-01T00:45:00", "arrivalTime": "2027-05-01T01:00:00"},
            {"@type": "Flight", "flightNumber": "4321", "airline": {"iataCode": "AB"},
             "departureAirport": {"iataCode": "TXL"}, "arrivalAirport": {"iataCode": "SXF"},
             "departureTime": "2027-05-02T00:45:00", "arrivalTime": "2027-05-02T01:00:00"},
            null
        ]
    });
    let found = extract_json_ld(&j.to_string(), sent());
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|f| f.reservation_number == "XXX007" && f.provider == "AB"));
    assert_eq!(found[0].key, "flight|ab|XXX007|ab1234@2027-05-01");
    assert_eq!(found[1].key, "flight|ab|XXX007|ab4321@2027-05-02");
    assert_eq!((found[1].origin.as_deref(), found[1].destination.as_deref()), (Some("TXL"), Some("SXF")));
    // Each leg's details hold that leg only.
    assert_eq!(found[0].details["reservationFor"]["flightNumber"], "1234");
    assert_eq!(found[1].details["reservationFor"]["flightNumber"], "4321");
}

#[test]
fn multi_leg_as_separate_reservations_in_microdata() {
    let leg = |number: &str, from: &str, to: &str, at: &str| {
        format!(
            r#"<div itemscope itemtype="http://schema.org/FlightReservation">
            <meta itemprop="reservationNumber" content="KDEKDE">
            <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Flight">
              <meta itemprop="flightNumber" content="{number}">
              <div itemprop="airline" itemscope itemtype="http://schema.org/Airline"><meta itemprop="name" content="LUFTHANSA"><meta itemprop="iataCode" content="LH"></div>
              <div itemprop="departureAirport" itemscope itemtype="http://schema.org/Airport"><meta itemprop="iataCode" content="{from}"></div>
              <meta itemprop="departureTime" content="{at}">
              <div itemprop="arrivalAirport" itemscope itemtype="http://schema.org/Airport"><meta itemprop="iataCode" content="{to}"></div>
            </div></div>"#
        )
    };
    let html = microdata_email(&format!(
        "{}{}{}",
        leg("2029", "TXL", "MUC", "2027-04-07T08:30:00+02:00"),
        leg("2218", "MUC", "TLS", "2027-04-07T11:10:00+02:00"),
        leg("2221", "TLS", "MUC", "2027-04-09T18:15:00+02:00"),
    ));
    let keys: Vec<String> = extract_html(&html, sent()).into_iter().map(|f| f.key).collect();
    assert_eq!(
        keys,
        [
            "flight|lh|KDEKDE|lh2029@2027-04-07",
            "flight|lh|KDEKDE|lh2218@2027-04-07",
            "flight|lh|KDEKDE|lh2221@2027-04-09"
        ]
    );
}

#[test]
fn multi_leg_in_microdata_repeated_reservation_for() {
    let html = microdata_email(
        r#"<div itemscope itemtype="http://schema.org/TrainReservation">
          <meta itemprop="reservationNumber" content="T1">
          <div itemprop="reservationFor" itemscope itemtype="http://schema.org/TrainTrip">
            <meta itemprop="trainNumber" content="ICE 1"><meta itemprop="departureTime" content="2027-03-01T08:00">
          </div>
          <div itemprop="reservationFor" itemscope itemtype="http://schema.org/TrainTrip">
            <meta itemprop="trainNumber" content="ICE 2"><meta itemprop="departureTime" content="2027-03-01T12:00">
          </div></div>"#,
    );
    let found = extract_html(&html, sent());
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].key, "train||T1|ice1@2027-03-01");
    assert_eq!(found[1].key, "train||T1|ice2@2027-03-01");
}

// --------------------------------------------------------- cancellation

#[test]
fn cancellation_status_forms() {
    let cancelled = [
        json!("http://schema.org/ReservationCancelled"),
        json!("https://schema.org/ReservationCancelled"),
        json!("ReservationCancelled"),
        json!("http://schema.org/Cancelled"),
        json!("Cancelled"),
        json!(" CANCELLED "),
        json!("reservationcancelled"),
        json!({"@id": "http://schema.org/ReservationCancelled"}),
        json!(["http://schema.org/ReservationCancelled"]),
    ];
    let confirmed = [
        json!("http://schema.org/ReservationConfirmed"),
        json!("http://schema.org/Confirmed"),
        json!("ReservationPending"),
        json!("CancelledByMistakeNot"),
        json!(null),
        json!(42),
    ];
    for (status, expected) in
        cancelled.iter().map(|s| (s, Status::Cancelled)).chain(confirmed.iter().map(|s| (s, Status::Confirmed)))
    {
        let mut j: Value = serde_json::from_str(FLIGHT_JSON).unwrap();
        j["reservationStatus"] = status.clone();
        assert_eq!(only(extract_json_ld(&j.to_string(), sent())).status, expected, "{status}");
    }
    let mut j: Value = serde_json::from_str(FLIGHT_JSON).unwrap();
    j.as_object_mut().unwrap().remove("reservationStatus");
    assert_eq!(only(extract_json_ld(&j.to_string(), sent())).status, Status::Confirmed);

    let html = microdata_email(
        &FLIGHT_MICRODATA.replace("http://schema.org/ReservationConfirmed", "http://schema.org/ReservationCancelled"),
    );
    let f = html_one(&html);
    assert_eq!(f.status, Status::Cancelled);
    assert_eq!(f.key, "flight|ua|RXJ34P|ua110@2027-03-04");
}

// ------------------------------------------------------------- times

#[test]
fn yearless_dates_take_the_year_from_sent() {
    let j = json!({"@type": "EventReservation", "reservationNumber": "1",
        "reservationFor": {"name": "Show", "startDate": "--03-04T20:15:00-08:00", "endDate": "03-04T23:00"}});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.starts_at, utc("2027-03-05T04:15:00Z"));
    assert_eq!(f.ends_at, Some(utc("2027-03-04T23:00:00Z")));
    assert_eq!(f.key, "event||1|show@2027-03-04");
}

#[test]
fn yearless_dates_roll_over_from_december_to_january() {
    let december = sent_at("2026-12-20T18:00:00-05:00");
    let j = json!({"@type": "LodgingReservation", "reservationNumber": "NY1", "reservationFor": {"name": "Inn"},
        "checkinDate": "--12-30", "checkoutDate": "--01-02"});
    let f = only(extract_json_ld(&j.to_string(), december));
    assert_eq!(f.starts_at, utc("2026-12-30T00:00:00Z"));
    assert_eq!(f.ends_at, Some(utc("2027-01-02T00:00:00Z")));

    let j = json!({"@type": "FlightReservation", "reservationNumber": "R",
        "reservationFor": {"flightNumber": "LH 400", "departureTime": "01-05T10:00"}});
    let f = only(extract_json_ld(&j.to_string(), december));
    assert_eq!(f.starts_at, utc("2027-01-05T10:00:00Z"));
    assert_eq!(f.key, "flight|lh|R|lh400@2027-01-05");
}

#[test]
fn naive_times_dates_and_offsets() {
    let with = |departure: &str| {
        let j = json!({"@type": "TrainReservation", "reservationNumber": "N",
            "reservationFor": {"trainNumber": "1", "departureTime": departure}});
        extract_json_ld(&j.to_string(), sent()).into_iter().next().map(|f| (f.starts_at, f.key))
    };
    assert_eq!(with("2027-03-04T20:15:00"), Some((utc("2027-03-04T20:15:00Z"), "train||N|1@2027-03-04".into())));
    assert_eq!(with("2027-03-04"), Some((utc("2027-03-04T00:00:00Z"), "train||N|1@2027-03-04".into())));
    assert_eq!(with("2027-03-04T23:30:00-02:00"), Some((utc("2027-03-05T01:30:00Z"), "train||N|1@2027-03-04".into())));
    assert_eq!(with("2027-03-04T00:30:00+02:00"), Some((utc("2027-03-03T22:30:00Z"), "train||N|1@2027-03-04".into())));
    // No parseable start: dropped.
    assert_eq!(with("next Tuesday"), None);
    assert_eq!(with(""), None);
}

#[test]
fn reservation_without_start_is_dropped_others_kept() {
    let j = json!([
        {"@type": "FlightReservation", "reservationNumber": "A", "reservationFor": {"flightNumber": "1"}},
        {"@type": "FlightReservation", "reservationNumber": "B"},
        {"@type": "FoodEstablishmentReservation", "startTime": "2027-04-10T19:30"},
    ]);
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.kind, Kind::Food);
    assert_eq!(f.reservation_number, "");
    assert_eq!(f.provider, "");
    assert_eq!(f.key, "food|||2027-04-10");
}

// ----------------------------------------------------- fields and keys

#[test]
fn reservation_number_fallbacks() {
    let base = json!({"@type": "FoodEstablishmentReservation", "startTime": "2027-04-10T19:30", "reservationFor": "R"});
    let with = |extra: Value| {
        let mut j = base.clone();
        j.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        only(extract_json_ld(&j.to_string(), sent())).reservation_number
    };
    assert_eq!(with(json!({"reservationId": " ID-1 "})), "ID-1");
    assert_eq!(with(json!({"reservationNumber": "N", "reservationId": "ID"})), "N");
    assert_eq!(with(json!({"reservationNumber": "  ", "reservationId": "ID"})), "ID");
    assert_eq!(with(json!({"reservedTicket": [{"ticketNumber": "T1"}, {"ticketNumber": "T2"}]})), "T1");
    assert_eq!(with(json!({"reservedTicket": {"ticketNumber": 987}})), "987");
    assert_eq!(with(json!({"reservationNumber": 12345})), "12345");
}

#[test]
fn plain_string_names_and_addresses() {
    let j = json!({"@type": "FlightReservation", "reservationNumber": "P",
        "reservationFor": {"flightNumber": "9", "airline": "Plain Air", "departureTime": "2027-03-04",
            "arrivalAirport": {"iataCode": "JFK", "address": "JFK Airport, New York, US"}}});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.provider, "Plain Air");
    assert_eq!(f.city, None);
    assert_eq!(f.country, None);
    assert_eq!(f.key, "flight|plainair|P|9@2027-03-04");

    let j = json!({"@type": "FlightReservation", "reservationNumber": "P",
        "reservationFor": {"flightNumber": "9", "airline": {"iataCode": "pa"}, "departureTime": "2027-03-04"}});
    let f = only(extract_json_ld(&j.to_string(), sent()));
    assert_eq!(f.provider, "pa");
    assert_eq!(f.key, "flight|pa|P|pa9@2027-03-04");
}

#[test]
fn country_forms() {
    let with = |country: Value| {
        let j = json!({"@type": "FoodEstablishmentReservation", "startTime": "2027-04-10T19:30",
            "reservationFor": {"name": "R", "address": {"addressLocality": "Paris", "addressCountry": country}}});
        only(extract_json_ld(&j.to_string(), sent())).country
    };
    assert_eq!(with(json!("fr")), Some("FR".into()));
    assert_eq!(with(json!(" FR ")), Some("FR".into()));
    assert_eq!(with(json!({"@type": "Country", "name": "fr"})), Some("FR".into()));
    assert_eq!(with(json!("France")), None);
    assert_eq!(with(json!({"@type": "Country", "name": "France"})), None);
    assert_eq!(with(json!("F1")), None);
    assert_eq!(with(json!(null)), None);
}

#[test]
fn keys_distinguish_and_join_the_right_things() {
    let food = |number: &str, name: &str, start: &str| {
        let j = json!({"@type": "FoodEstablishmentReservation", "reservationNumber": number,
            "reservationFor": {"name": name}, "startTime": start});
        only(extract_json_ld(&j.to_string(), sent())).key
    };
    // Same table, rescheduled: same key.
    assert_eq!(food("A1", "Chez Nous", "2027-04-10T19:30"), food("a1", "CHEZ-NOUS", "2027-04-11T20:00"));
    // Another restaurant, another number: other keys.
    assert_ne!(food("A1", "Chez Nous", "2027-04-10T19:30"), food("A1", "Chez Vous", "2027-04-10T19:30"));
    assert_ne!(food("A1", "Chez Nous", "2027-04-10T19:30"), food("A2", "Chez Nous", "2027-04-10T19:30"));
    // Without a number, the date tells them apart.
    assert_ne!(food("", "Chez Nous", "2027-04-10T19:30"), food("", "Chez Nous", "2027-04-11T19:30"));
    // Kinds never share keys.
    let j = json!({"@type": "LodgingReservation", "reservationNumber": "A1",
        "reservationFor": {"name": "Chez Nous"}, "checkinDate": "2027-04-10"});
    assert_ne!(only(extract_json_ld(&j.to_string(), sent())).key, food("A1", "Chez Nous", "2027-04-10T19:30"));
}

// ---------------------------------------------------------- containers

#[test]
fn containers_graph_arrays_and_type_forms() {
    let j = json!({
        "@context": {"@vocab": "http://schema.org/"},
        "@graph": [
            {"@type": "WebPage", "name": "ignored"},
            [[{"@type": ["Thing", "https://schema.org/FoodEstablishmentReservation"], "reservationNumber": "G1",
               "startTime": "2027-04-10T19:30", "reservationFor": {"@type": "http://schema.org/Restaurant", "name": "A"}}]],
            {"@graph": {"@type": "schema:FoodEstablishmentReservation", "reservationNumber": "G2",
               "startTime": "2027-04-10T19:30", "reservationFor": {"name": "B"}}},
            {"@type": "Order", "acceptedOffer": {"@type": "FoodEstablishmentReservation", "reservationNumber": "NO",
               "startTime": "2027-04-10T19:30"}}
        ]
    });
    let found = extract_json_ld(&j.to_string(), sent());
    let numbers: Vec<&str> = found.iter().map(|f| f.reservation_number.as_str()).collect();
    assert_eq!(numbers, ["G1", "G2"]);
    assert_eq!(found[0].details["@type"], json!(["Thing", "FoodEstablishmentReservation"]));
    assert_eq!(found[0].details["reservationFor"]["@type"], "Restaurant");
    assert_eq!(found[1].details["@type"], "FoodEstablishmentReservation");

    let html = email(&[&format!("[{FLIGHT_JSON}, [{LODGING_JSON}]]"), r#"{"@type": "Organization", "name": "x"}"#]);
    assert_eq!(extract_html(&html, sent()).len(), 2);
}

#[test]
fn script_type_variants() {
    for open in [
        r#"<script type="application/ld+json">"#,
        r#"<SCRIPT TYPE="Application/LD+JSON">"#,
        r#"<script type="application/ld+json; charset=utf-8" id="x">"#,
        r#"<script type=' application/ld+json '>"#,
        r#"<script data-foo="1" type=application/ld+json>"#,
    ] {
        let html = format!("<html><body>{open}{FLIGHT_JSON}</script></body></html>");
        check_flight(&html_one(&html));
    }
    let html = format!(r#"<script type="text/json">{FLIGHT_JSON}</script><!-- application/ld+json -->"#);
    assert!(extract_html(&html, sent()).is_empty());
}

// ---------------------------------------------------------- sloppy JSON

#[test]
fn sloppy_json_is_repaired() {
    let entity_escaped = FLIGHT_JSON.replace('"', "&quot;");
    let trailing_commas = FLIGHT_JSON.replace("\"UA\"}", "\"UA\",}").replace("-05:00\"\n  }", "-05:00\",\n  },");
    let commented =
        format!("<!--\n// booking data\n{}\n-->", FLIGHT_JSON.replace("\"flightNumber\"", "/* n */ \"flightNumber\""));
    let raw_newline = FLIGHT_JSON.replace("\"Eva Green\"", "\"Eva\nGreen\"");
    for (name, block) in [
        ("entities", entity_escaped.as_str()),
        ("trailing commas", trailing_commas.as_str()),
        ("comments", commented.as_str()),
        ("raw newline", raw_newline.as_str()),
    ] {
        let found = extract_html(&email(&[block]), sent());
        assert_eq!(found.len(), 1, "{name}: {block}");
        assert_eq!(summary(&found[0]), summary(&html_one(&email(&[FLIGHT_JSON]))), "{name}");
    }
    let f = html_one(&email(&[&raw_newline]));
    assert_eq!(f.details["underName"]["name"], "Eva\nGreen");
}

#[test]
fn eurowings_and_volotea_shapes() {
    // Two objects without a comma in an array; two objects without an array.
    let a = format!("[{LODGING_JSON}{FOOD_JSON}]");
    let b = format!("{LODGING_JSON}\n{FOOD_JSON}");
    for block in [a, b] {
        let kinds: Vec<Kind> = extract_html(&email(&[&block]), sent()).iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Lodging, Kind::Food]);
    }
}

#[test]
fn broken_block_does_not_hide_the_others() {
    let truncated = &FLIGHT_JSON[..FLIGHT_JSON.len() / 2];
    let html = email(&[truncated, "{'single': 'quotes'}", "", "   ", LODGING_JSON, "null", "42", "\"text\""]);
    let f = html_one(&html);
    assert_eq!(f.kind, Kind::Lodging);
}

// -------------------------------------------------------------- dedupe

#[test]
fn repeats_are_merged_later_fields_win() {
    let first = json!({"@type": "LodgingReservation", "reservationNumber": "M1",
        "reservationFor": {"name": "Inn", "address": {"addressLocality": "Rome"}},
        "checkinDate": "2027-04-11", "guests": 2});
    let second = json!({"@type": "LodgingReservation", "reservationNumber": "M1",
        "reservationStatus": "Cancelled",
        "reservationFor": {"name": "Inn", "address": {"addressCountry": "IT"}},
        "checkinDate": "2027-04-12", "checkoutDate": "2027-04-14", "guests": null, "note": "late arrival"});
    let f = only(extract_json_ld(&json!([first, second]).to_string(), sent()));
    assert_eq!(f.status, Status::Cancelled);
    assert_eq!(f.starts_at, utc("2027-04-12T00:00:00Z"));
    assert_eq!(f.ends_at, Some(utc("2027-04-14T00:00:00Z")));
    // Empty later fields do not erase earlier ones.
    assert_eq!(f.city.as_deref(), Some("Rome"));
    assert_eq!(f.country.as_deref(), Some("IT"));
    // Details: shallow merge; `reservationFor` is replaced whole.
    assert_eq!(f.details["guests"], 2);
    assert_eq!(f.details["note"], "late arrival");
    assert_eq!(f.details["reservationFor"]["address"], json!({"addressCountry": "IT"}));
}

#[test]
fn identical_repeats_come_back_once() {
    let html = email(&[FLIGHT_JSON, FLIGHT_JSON, &format!("[{FLIGHT_JSON}]")]);
    check_flight(&html_one(&format!("{html}{FLIGHT_MICRODATA}{FLIGHT_MICRODATA}")));
}

// ------------------------------------------------------------ microdata

#[test]
fn microdata_in_sloppy_html() {
    // HTML4 upper-case tags, unclosed elements, stray end tags, attributes
    // without quotes, a broken tag before the markup.
    let html = r#"<HTML><HEAD><META http-equiv=Content-Type content="text/html"></HEAD><BODY><tag1></tag2>
        <TABLE><TR><TD><P>Hello<P>
        <DIV itemscope itemtype=http://schema.org/FoodEstablishmentReservation>
          <META itemprop=reservationNumber content=OT12345>
          <DIV itemprop=reservationFor itemscope itemtype=http://schema.org/FoodEstablishment>
            <SPAN itemprop=name>Wagamama</SPAN>
            <DIV itemprop=address itemscope itemtype=http://schema.org/PostalAddress>
              <SPAN itemprop=addressLocality>London<SPAN itemprop=addressCountry>GB</SPAN></SPAN>
          </DIV></DIV>
          <META itemprop=startTime content=2027-04-10T19:30:00+01:00>
        </DIV></TD></TR></TABLE>"#;
    let f = html_one(html);
    assert_eq!(f.reservation_number, "OT12345");
    assert_eq!(f.provider, "Wagamama");
    assert_eq!(f.country.as_deref(), Some("GB"));
    // Text content includes nested text, as the microdata spec says.
    assert_eq!(f.city.as_deref(), Some("LondonGB"));
}

#[test]
fn microdata_details_shape() {
    let f = html_one(&microdata_email(FOOD_MICRODATA));
    assert_eq!(
        f.details,
        json!({
            "@type": "FoodEstablishmentReservation",
            "reservationNumber": "OT12345",
            "reservationStatus": "http://schema.org/Confirmed",
            "reservationFor": {
                "@type": "FoodEstablishment",
                "name": "Wagamama",
                "address": {"@type": "PostalAddress", "addressLocality": "London", "addressCountry": "gb"}
            },
            "startTime": "2027-04-10T19:30:00+01:00",
            "partySize": "2"
        })
    );
}

#[test]
fn json_ld_inside_microdata_and_non_reservation_items() {
    let html = microdata_email(&format!(
        r#"<div itemscope itemtype="http://schema.org/Product"><span itemprop="name">Upgrade</span>
             <script type="application/ld+json">{FOOD_JSON}</script></div>
           <div itemscope itemtype="http://schema.org/Organization"><span itemprop="name">Org</span></div>"#
    ));
    assert_eq!(html_one(&html).kind, Kind::Food);
}

/// The microdata path over the whole document, for comparison with the
/// region-by-region path `extract_html` takes.
fn extract_whole_document(html: &str) -> Vec<Found> {
    let mut out = normalize::Collector::new(sent());
    for block in &html::scan(html, false).json_ld {
        for document in jsonld::parse(block) {
            out.add_document(&document);
        }
    }
    let doc = scraper::Html::parse_document(html);
    for item in microdata::items(&doc, &mut microdata::Budget::default()) {
        out.add_document(&item);
    }
    out.finish()
}

#[test]
fn regions_give_what_the_whole_document_gives() {
    let inline_p = r#"<p>Dear John</p><p itemscope itemtype="http://schema.org/EventReservation">
        Number: <span itemprop="reservationNumber">IO12345</span><br/>
        <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Event">
          <span itemprop="name">Google I/O</span>
          <time itemprop="startDate" datetime="2027-05-15T08:30:00-08:00">May 15</time>
        </div></p><p>Bye</p>"#;
    let table_rows = r#"<table><tr itemscope itemtype="http://schema.org/FoodEstablishmentReservation">
          <td><meta itemprop="reservationNumber" content="T1"><meta itemprop="startTime" content="2027-04-10T19:30"></td>
          <td itemprop="reservationFor" itemscope itemtype="http://schema.org/Restaurant"><b itemprop="name">Bistro</b></td></tr>
        <tr itemscope itemtype="http://schema.org/FoodEstablishmentReservation"><td>
          <meta itemprop="reservationNumber" content="T2"><meta itemprop="startTime" content="2027-04-11T19:30"></td></tr></table>"#;
    let cell = r#"<table><tr><td itemscope itemtype="http://schema.org/FoodEstablishmentReservation">
          <meta itemprop="reservationNumber" content="C1"><meta itemprop="startTime" content="2027-04-10T19:30">
          <div itemprop="reservationFor" itemscope><span itemprop="name">Cell Café</span></div></td></tr></table>"#;
    let misnested = r#"<div itemscope itemtype="http://schema.org/LodgingReservation"><span><div>x</span></div>
          <meta itemprop="reservationNumber" content="M1"><meta itemprop="checkinDate" content="2027-04-11">
          <font><div itemprop="reservationFor" itemscope><b itemprop="name">Inn</div></font></div><p>after"#;
    let unclosed = r#"<div itemscope itemtype="http://schema.org/BusReservation"><meta itemprop="reservationNumber" content="U1">
          <div itemprop="reservationFor" itemscope><meta itemprop="departureTime" content="2027-03-01T08:00">"#;
    let on_body = r#"<html><body itemscope itemtype="http://schema.org/FoodEstablishmentReservation">
          <meta itemprop="startTime" content="2027-04-10T19:30"><span itemprop="reservationNumber">B1</span></body></html>"#;
    let nested_top_level = r#"<div itemscope itemtype="http://schema.org/Product"><div itemscope
          itemtype="http://schema.org/FoodEstablishmentReservation"><meta itemprop="startTime" content="2027-04-10"></div></div>"#;
    let samples = [
        microdata_email(FLIGHT_MICRODATA),
        microdata_email(LODGING_MICRODATA),
        microdata_email(RENTAL_MICRODATA),
        microdata_email(TRAIN_MICRODATA),
        microdata_email(BUS_MICRODATA),
        microdata_email(EVENT_MICRODATA),
        microdata_email(FOOD_MICRODATA),
        format!("{}{FLIGHT_MICRODATA}{LODGING_MICRODATA}", email(&[FLIGHT_JSON])),
        inline_p.to_owned(),
        table_rows.to_owned(),
        cell.to_owned(),
        misnested.to_owned(),
        unclosed.to_owned(),
        on_body.to_owned(),
        nested_top_level.to_owned(),
    ];
    for html in &samples {
        let by_region = extract_html(html, sent());
        assert!(!by_region.is_empty(), "{html}");
        assert_eq!(by_region, extract_whole_document(html), "{html}");
    }
    assert_eq!(html_one(inline_p).details["reservationFor"]["name"], "Google I/O");
    assert_eq!(extract_html(table_rows, sent()).len(), 2);
    assert_eq!(html_one(cell).provider, "Cell Café");
}

// ------------------------------------------------------- no markup, caps

#[test]
fn nothing_to_find() {
    for html in [
        "",
        "<html><body>Plain email</body></html>",
        "<p>We support application/ld+json and itemscope!</p>",
        "<script type=\"application/ld+json\"></script>",
        "<div itemscope itemtype=\"http://schema.org/FlightReservation\"></div>",
    ] {
        assert!(extract_html(html, sent()).is_empty(), "{html}");
    }
    assert!(extract_json_ld("", sent()).is_empty());
    assert!(extract_json_ld("{}", sent()).is_empty());
    assert!(extract_json_ld("[]", sent()).is_empty());
}

#[test]
fn marker_check_is_case_insensitive() {
    assert_eq!(markers("xx APPLICATION/LD+JSON"), (true, false));
    assert_eq!(markers("<div ItemScope>"), (false, true));
    assert_eq!(markers("itemscop application/ld json"), (false, false));
    assert_eq!(markers(""), (false, false));
    assert_eq!(markers("éiitemscopeé"), (false, true));
}

#[test]
fn reservation_cap() {
    let one = json!({"@type": "FoodEstablishmentReservation", "startTime": "2027-04-10T19:30", "reservationFor": "R"});
    let many: Vec<Value> = (0..1_500)
        .map(|i| {
            let mut r = one.clone();
            r["reservationNumber"] = json!(format!("N{i}"));
            r
        })
        .collect();
    let found = extract_json_ld(&Value::Array(many).to_string(), sent());
    assert_eq!(found.len(), MAX_RESERVATIONS);
}

#[test]
fn input_cap() {
    let padding = "x".repeat(MAX_INPUT_BYTES);
    let late = format!("{padding}{}", email(&[FLIGHT_JSON]));
    assert!(extract_html(&late, sent()).is_empty());
    let early = format!("{}<!--{padding}-->", email(&[FLIGHT_JSON]));
    check_flight(&html_one(&early));
    // A cut inside a multi-byte character is not a panic.
    let multibyte = format!("{}{}", "é".repeat(MAX_INPUT_BYTES / 2), email(&[FLIGHT_JSON]));
    assert!(extract_html(&multibyte, sent()).is_empty());
    assert_eq!(clamp(&"é".repeat(MAX_INPUT_BYTES)).len(), MAX_INPUT_BYTES);
    assert_eq!(clamp(&format!("a{}", "é".repeat(MAX_INPUT_BYTES / 2))).len(), MAX_INPUT_BYTES - 1);
}

// ------------------------------------------------------------- no panic

#[test]
fn deep_json_nesting() {
    let deep_array = format!("{}{FLIGHT_JSON}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(extract_json_ld(&deep_array, sent()).is_empty());
    // Within serde_json's limit but beyond ours: not searched.
    let deep_ok = format!("{}{FLIGHT_JSON}{}", "[".repeat(100), "]".repeat(100));
    assert!(extract_json_ld(&deep_ok, sent()).is_empty());
    let shallow = format!("{}{FLIGHT_JSON}{}", "[".repeat(10), "]".repeat(10));
    check_flight(&only(extract_json_ld(&shallow, sent())));
    let mut graph = FLIGHT_JSON.to_owned();
    for _ in 0..100 {
        graph = format!("{{\"@graph\": {graph}}}");
    }
    assert!(extract_json_ld(&graph, sent()).is_empty());
    // Deep nesting inside a reservation's details.
    let deep_details = FLIGHT_JSON.replacen('{', &format!("{{\"x\": {}1{},", "[".repeat(120), "]".repeat(120)), 1);
    check_flight(&only(extract_json_ld(&deep_details, sent())));
}

#[test]
fn deep_html_nesting() {
    // Too deep for the tree builder's budget: microdata skipped, JSON-LD kept.
    let deep = format!("{}{FOOD_MICRODATA}{}", "<div>".repeat(50_000), email(&[FLIGHT_JSON]));
    check_flight(&html_one(&deep));
    // Deep but within budget: microdata still read.
    let moderate = format!("{}{FOOD_MICRODATA}", "<div>".repeat(2_000));
    assert_eq!(html_one(&moderate).kind, Kind::Food);
    // Deeply nested microdata items.
    let mut items = String::from(
        r#"<div itemscope itemtype="http://schema.org/FoodEstablishmentReservation"><meta itemprop="startTime" content="2027-04-10">"#,
    );
    for _ in 0..3_000 {
        items.push_str(r#"<div itemprop="reservationFor" itemscope itemtype="http://schema.org/FoodEstablishment">"#);
    }
    let f = html_one(&items);
    assert_eq!(f.starts_at, utc("2027-04-10T00:00:00Z"));
}

/// A tiny deterministic PRNG (xorshift64*), so the "fuzz" runs are
/// reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn sample_email() -> String {
    format!("{}{}{}", email(&[FLIGHT_JSON, &format!("[{LODGING_JSON},]")]), TRAIN_MICRODATA, FLIGHT_MICRODATA)
}

#[test]
fn truncations_never_panic() {
    let sample = sample_email();
    let full = extract_html(&sample, sent());
    assert_eq!(full.len(), 3);
    let mut cut = 0;
    while cut < sample.len() {
        if let Some(prefix) = sample.get(..cut) {
            let found = extract_html(prefix, sent());
            // A prefix never invents reservations: a subset of the full
            // result's keys.
            for f in &found {
                assert!(full.iter().any(|g| g.key == f.key), "cut at {cut}: {}", f.key);
            }
        }
        cut += 3;
    }
    for cut in 0..FLIGHT_JSON.len() {
        let _ = extract_json_ld(&FLIGHT_JSON[..cut], sent());
        let _ = extract_json_ld(&FLIGHT_JSON[cut..], sent());
    }
}

#[test]
fn random_soup_never_panics() {
    let sample = sample_email();
    let pieces: Vec<&str> = vec![
        "<",
        ">",
        "</",
        "/>",
        "<!--",
        "-->",
        "<script type=\"application/ld+json\">",
        "</script>",
        "{",
        "}",
        "[",
        "]",
        "\"",
        ",",
        ":",
        "&quot;",
        "itemscope",
        "itemprop=\"reservationFor\"",
        "itemtype=\"http://schema.org/FlightReservation\"",
        "<div ",
        "<meta itemprop=\"departureTime\" content=\"",
        "--03-04",
        "2027-03-04T20:15:00-08:00",
        "\"@type\"",
        "\"FlightReservation\"",
        "\"reservationFor\"",
        "\"@graph\"",
        "//",
        "/*",
        "\\",
        "\n",
        "é",
        "\u{0}",
        "<svg>",
        "<b>",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3_000 {
        let mut soup = String::new();
        match round % 3 {
            // Random bytes, made text the way a mail decoder would.
            0 => {
                let bytes: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
                soup.push_str(&String::from_utf8_lossy(&bytes));
            }
            // Random markup-ish pieces.
            1 => {
                for _ in 0..rng.below(80) {
                    soup.push_str(pieces[rng.below(pieces.len())]);
                }
            }
            // The sample with random splices.
            _ => {
                soup.push_str(&sample);
                for _ in 0..1 + rng.below(6) {
                    let at = rng.below(soup.len());
                    if !soup.is_char_boundary(at) {
                        continue;
                    }
                    if rng.below(2) == 0 {
                        let end = (at + rng.below(40)).min(soup.len());
                        if soup.is_char_boundary(end) {
                            soup.replace_range(at..end, "");
                        }
                    } else {
                        soup.insert_str(at, pieces[rng.below(pieces.len())]);
                    }
                }
            }
        }
        let _ = extract_html(&soup, sent());
        let _ = extract_json_ld(&soup, sent());
    }
}

#[test]
fn regions_agree_with_whole_document_under_mutation() {
    // Random damage to a sample (tags cut, stray and unbalanced tags and
    // comments inserted) must not make the region-by-region microdata
    // path disagree with parsing the whole document.
    let sample = sample_email();
    let pieces = [
        "<",
        ">",
        "</div>",
        "<div>",
        "<p>",
        "</p>",
        "<td>",
        "<tr>",
        "<table>",
        "</table>",
        "<b>",
        "</b>",
        "<!--",
        "-->",
        "itemscope ",
        "itemprop=\"x\" ",
        "<li>",
        "<br/>",
        "<div/>",
        "&amp;",
        "<span>",
        "</span>",
    ];
    let mut rng = Rng(42);
    for round in 0..400 {
        let mut soup = sample.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(soup.len());
            if !soup.is_char_boundary(at) {
                continue;
            }
            if rng.below(2) == 0 {
                let end = (at + rng.below(30)).min(soup.len());
                if soup.is_char_boundary(end) {
                    soup.replace_range(at..end, "");
                }
            } else {
                soup.insert_str(at, pieces[rng.below(pieces.len())]);
            }
        }
        assert_eq!(extract_html(&soup, sent()), extract_whole_document(&soup), "round {round}:\n{soup}");
    }
}
