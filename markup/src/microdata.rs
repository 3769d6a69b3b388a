//! HTML microdata to the JSON-LD shape, following the WHATWG microdata
//! algorithm closely enough for email markup.
//!
//! - Top-level items are elements with `itemscope` and no `itemprop`; only
//!   those whose `itemtype` names a reservation type are converted (other
//!   items are ignored by the rules anyway, and marketing mails carry many).
//! - An item's properties are found by walking its descendants, not
//!   entering nested items (an element with `itemscope`); each `itemprop`
//!   token (space separated, schema.org URL prefixes removed) gets the value.
//! - A property's value: a nested item as an object; else `content` of
//!   `meta`, `src` of media elements, `href` of `a`/`area`/`link`, `data` of
//!   `object`, `value` of `data`/`meter`, `datetime` of `time`; else the
//!   element's text. Values are trimmed. When an element lacks its
//!   attribute, `content` and then the text are used instead (senders write
//!   `<link itemprop=… content=…>`), except `meta`, whose value is then
//!   empty.
//! - A property given more than once becomes an array, in document order.
//! - `itemtype` becomes `@type`, without the schema.org prefix (an array when
//!   it lists several types).
//! - Repair (after KDE Itinerary): an item with `itemprop` that follows a
//!   top-level reservation item as its sibling is a property of it. HTML
//!   parsing produces such orphans from markup like
//!   `<p itemscope …><div itemprop="reservationFor" itemscope …>`, since a
//!   `<div>` closes an open `<p>`.
//!
//! `itemref` is not followed: email markup does not use it, and it is the
//! one way microdata can form cycles.
//!
//! Bounds: nested items deeper than [`crate::MAX_DEPTH`] are dropped; each
//! value is cut at [`crate::MAX_VALUE_BYTES`]; the values of one call may
//! total [`crate::MAX_MICRODATA_BYTES`] (counting copies made for several
//! property names), after which further properties are dropped. The walk is
//! iterative, so the depth of the HTML does not matter to the stack.

use scraper::{ElementRef, Html};
use serde_json::{Map, Value};

use crate::{schema, MAX_DEPTH, MAX_MICRODATA_BYTES, MAX_RESERVATIONS, MAX_VALUE_BYTES};

/// What a property or object costs against the budget beyond its text.
const NODE_COST: usize = 32;

/// At most this many names in one `itemprop` attribute are used.
const MAX_NAMES_PER_PROPERTY: usize = 8;

/// The bytes of microdata values one call may still produce; shared by the
/// fragments of one document.
pub(crate) struct Budget(usize);

impl Default for Budget {
    fn default() -> Self {
        Budget(MAX_MICRODATA_BYTES)
    }
}

/// Every top-level reservation item of a document or fragment, as
/// JSON-LD-style objects, in document order.
pub(crate) fn items(doc: &Html, budget: &mut Budget) -> Vec<Value> {
    let budget = &mut budget.0;
    let mut out = Vec::new();
    // The latest top-level item, when it is a reservation: its index in
    // `out` and its parent node.
    let mut last = None;
    for el in doc.tree.root().descendants().filter_map(ElementRef::wrap) {
        let e = el.value();
        if e.attr("itemscope").is_none() {
            continue;
        }
        if *budget == 0 {
            break;
        }
        match e.attr("itemprop") {
            None => {
                last = None;
                let Some(types) = e.attr("itemtype") else { continue };
                if !types.split_ascii_whitespace().any(|t| schema::kind_of_type(t).is_some()) {
                    continue;
                }
                if out.len() >= MAX_RESERVATIONS {
                    break;
                }
                out.push(item(el, 0, budget).0);
                last = el.parent().map(|parent| (out.len() - 1, parent.id()));
            }
            Some(props) => {
                // A property item that is a sibling of the latest top-level
                // reservation item: the HTML parser moved it out of that item
                // (`<p itemscope>` is closed by a nested `<div>`), so it
                // belongs to it.
                let Some((index, parent_id)) = last else { continue };
                if el.parent().map(|p| p.id()) != Some(parent_id) {
                    continue;
                }
                let Some(parent) = out.get_mut(index).and_then(Value::as_object_mut) else { continue };
                let (value, cost) = item(el, 1, budget);
                insert_named(parent, &property_names(props), value, cost, false, budget);
            }
        }
    }
    out
}

/// One item as an object, and what it cost.
fn item(el: ElementRef<'_>, depth: usize, budget: &mut usize) -> (Value, usize) {
    let mut map = Map::new();
    let mut cost = NODE_COST;
    if let Some(types) = el.value().attr("itemtype") {
        let mut names: Vec<Value> =
            types.split_ascii_whitespace().map(|t| Value::String(schema::strip_prefix(t).to_owned())).collect();
        cost += types.len();
        match names.len() {
            0 => {}
            1 => {
                if let Some(name) = names.pop() {
                    map.insert("@type".to_owned(), name);
                }
            }
            _ => {
                map.insert("@type".to_owned(), Value::Array(names));
            }
        }
    }
    *budget = budget.saturating_sub(cost);

    // Pending elements, last first, so popping walks in document order.
    let mut pending: Vec<ElementRef<'_>> = el.child_elements().collect();
    pending.reverse();
    while let Some(cur) = pending.pop() {
        let e = cur.value();
        let scope = e.attr("itemscope").is_some();
        if let Some(props) = e.attr("itemprop") {
            let names = property_names(props);
            if !names.is_empty() && *budget > 0 {
                // A nested item has charged its own contents; only copies for
                // further names cost again. A text value costs every time.
                let value = if scope {
                    (depth + 1 < MAX_DEPTH).then(|| {
                        let (value, cost) = item(cur, depth + 1, budget);
                        (value, cost, false)
                    })
                } else {
                    let text = value_of(cur);
                    let cost = text.len() + NODE_COST;
                    Some((Value::String(text), cost, true))
                };
                if let Some((value, value_cost, charge_first)) = value {
                    let added = insert_named(&mut map, &names, value, value_cost, charge_first, budget);
                    cost = cost.saturating_add(added);
                }
            }
        }
        if !scope {
            let start = pending.len();
            pending.extend(cur.child_elements());
            if let Some(new) = pending.get_mut(start..) {
                new.reverse();
            }
        }
    }
    (Value::Object(map), cost)
}

/// The distinct names of an `itemprop` attribute, schema.org prefixes
/// removed.
fn property_names(attr: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for name in attr.split_ascii_whitespace().map(schema::strip_prefix) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
            if names.len() == MAX_NAMES_PER_PROPERTY {
                break;
            }
        }
    }
    names
}

/// Adds `value` under each of `names` while the budget allows, charging
/// `cost` for each copy (and for the first one too when `charge_first`: a
/// nested item has already charged its contents). Returns what was added.
fn insert_named(
    map: &mut Map<String, Value>,
    names: &[&str],
    value: Value,
    cost: usize,
    charge_first: bool,
    budget: &mut usize,
) -> usize {
    let mut added = 0usize;
    let mut value = Some(value);
    for (n, name) in names.iter().enumerate() {
        if charge_first || n > 0 {
            if *budget < cost {
                break;
            }
            *budget -= cost;
        }
        added = added.saturating_add(cost);
        // The last name takes the value itself; earlier ones a copy.
        let v = if n + 1 == names.len() { value.take() } else { value.clone() };
        if let Some(v) = v {
            insert(map, name, v);
        }
    }
    added
}

/// Adds a property value; a repeated property becomes an array.
fn insert(map: &mut Map<String, Value>, name: &str, value: Value) {
    match map.get_mut(name) {
        None => {
            map.insert(name.to_owned(), value);
        }
        Some(Value::Array(values)) => values.push(value),
        Some(existing) => {
            let old = existing.take();
            *existing = Value::Array(vec![old, value]);
        }
    }
}

/// The value of a non-item property element, trimmed and bounded.
fn value_of(el: ElementRef<'_>) -> String {
    let e = el.value();
    let attr = match e.name() {
        "meta" => return bounded(e.attr("content").unwrap_or("")),
        "audio" | "embed" | "iframe" | "img" | "source" | "track" | "video" => Some("src"),
        "a" | "area" | "link" => Some("href"),
        "object" => Some("data"),
        "data" | "meter" => Some("value"),
        "time" => Some("datetime"),
        _ => None,
    };
    if let Some(attr) = attr {
        if let Some(v) = e.attr(attr).or_else(|| e.attr("content")) {
            return bounded(v);
        }
    }
    let mut text = String::new();
    for chunk in el.text() {
        if text.len() + chunk.len() > MAX_VALUE_BYTES {
            text.push_str(cut(chunk, MAX_VALUE_BYTES.saturating_sub(text.len())));
            break;
        }
        text.push_str(chunk);
    }
    let trimmed = text.trim();
    if trimmed.len() == text.len() {
        text
    } else {
        trimmed.to_owned()
    }
}

fn bounded(value: &str) -> String {
    cut(value.trim(), MAX_VALUE_BYTES).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes ending on a character
/// boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(html: &str) -> Vec<Value> {
        items(&Html::parse_document(html), &mut Budget::default())
    }

    #[test]
    fn values_per_element() {
        let html = r#"<div itemscope itemtype="http://schema.org/EventReservation">
            <meta itemprop="reservationNumber" content=" E1 ">
            <link itemprop="reservationStatus" href="http://schema.org/ReservationConfirmed">
            <a itemprop="url" href="https://x.test/a?b=1&amp;c=2">text</a>
            <img itemprop="image" src="https://x.test/i.png">
            <time itemprop="modifiedTime" datetime="2027-01-01T10:00:00Z">yesterday</time>
            <time itemprop="bookingTime">2027-01-01</time>
            <data itemprop="partySize" value="2">two</data>
            <span itemprop="name">  Concert
               night </span>
            <link itemprop="checkinUrl" content="https://x.test/c">
            <meta itemprop="empty">
            <div itemprop="description"><b>Bold</b> and <i>italic</i></div>
        </div>"#;
        assert_eq!(
            parse(html),
            vec![json!({
                "@type": "EventReservation",
                "reservationNumber": "E1",
                "reservationStatus": "http://schema.org/ReservationConfirmed",
                "url": "https://x.test/a?b=1&c=2",
                "image": "https://x.test/i.png",
                "modifiedTime": "2027-01-01T10:00:00Z",
                "bookingTime": "2027-01-01",
                "partySize": "2",
                "name": "Concert\n               night",
                "checkinUrl": "https://x.test/c",
                "empty": "",
                "description": "Bold and italic",
            })]
        );
    }

    #[test]
    fn nesting_names_and_repeats() {
        let html = r#"<body><div itemscope itemtype="https://schema.org/FlightReservation">
            <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Flight">
              <meta itemprop="flightNumber" content="1">
              <div itemprop="airline provider http://schema.org/carrier" itemscope itemtype="http://schema.org/Airline">
                <meta itemprop="iataCode" content="LH">
              </div>
            </div>
            <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Flight">
              <meta itemprop="flightNumber" content="2">
            </div>
            <div itemscope itemtype="http://schema.org/Person"><meta itemprop="name" content="not a property"></div>
            <div><p><meta itemprop="reservationNumber" content="ABC"></p></div>
          </div></body>"#;
        let airline = json!({"@type": "Airline", "iataCode": "LH"});
        assert_eq!(
            parse(html),
            vec![json!({
                "@type": "FlightReservation",
                "reservationNumber": "ABC",
                "reservationFor": [
                    {"@type": "Flight", "flightNumber": "1", "airline": airline, "provider": airline, "carrier": airline},
                    {"@type": "Flight", "flightNumber": "2"},
                ],
            })]
        );
    }

    #[test]
    fn only_top_level_reservation_items() {
        let html = r#"<div itemscope itemtype="http://schema.org/Product"><span itemprop="name">P</span>
              <div itemscope itemtype="http://schema.org/LodgingReservation"><meta itemprop="reservationNumber" content="L"></div>
            </div>
            <div itemprop="x" itemscope itemtype="http://schema.org/LodgingReservation"></div>
            <div itemscope itemtype="http://schema.org/Thing http://schema.org/TrainReservation"></div>"#;
        assert_eq!(
            parse(html),
            vec![
                json!({"@type": "LodgingReservation", "reservationNumber": "L"}),
                json!({"@type": ["Thing", "TrainReservation"]}),
            ]
        );
    }

    #[test]
    fn orphan_property_items_join_the_preceding_item() {
        // The parser closes the <p> at the <div>: reservationFor ends up
        // after the item, not inside it.
        let html = r#"<p itemscope itemtype="http://schema.org/EventReservation">
              Number: <span itemprop="reservationNumber">IO12345</span>
              <div itemprop="reservationFor" itemscope itemtype="http://schema.org/Event">
                <span itemprop="name">Google I/O</span>
              </div></p>
            <div itemprop="broker" itemscope itemtype="http://schema.org/Organization"><b itemprop="name">B</b></div>
            <div itemscope itemtype="http://schema.org/Organization"></div>
            <div itemprop="publisher" itemscope itemtype="http://schema.org/Organization"></div>"#;
        assert_eq!(
            parse(html),
            vec![json!({
                "@type": "EventReservation",
                "reservationNumber": "IO12345",
                "reservationFor": {"@type": "Event", "name": "Google I/O"},
                "broker": {"@type": "Organization", "name": "B"},
            })]
        );
    }

    #[test]
    fn deep_item_nesting_is_cut() {
        let mut html = String::from(r#"<div itemscope itemtype="http://schema.org/EventReservation">"#);
        for _ in 0..200 {
            html.push_str(r#"<div itemprop="x" itemscope>"#);
        }
        let items = parse(&html);
        assert_eq!(items.len(), 1);
        let mut depth = 0;
        let mut v = &items[0];
        while let Some(inner) = v.get("x") {
            v = inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH - 1);
    }

    #[test]
    fn values_are_bounded() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let html = format!(
            r#"<div itemscope itemtype="http://schema.org/EventReservation"><span itemprop="a">{long}</span><meta itemprop="b" content="{long}"></div>"#
        );
        let items = parse(&html);
        let a = items[0]["a"].as_str().unwrap();
        let b = items[0]["b"].as_str().unwrap();
        assert!(a.len() <= MAX_VALUE_BYTES && a.len() > MAX_VALUE_BYTES - 4);
        assert!(b.len() <= MAX_VALUE_BYTES && b.len() > MAX_VALUE_BYTES - 4);
    }

    #[test]
    fn copies_for_many_names_are_bounded() {
        // Each level is copied under eight names: without a budget this
        // would be 8^20 objects.
        let names = "a b c d e f g h";
        let mut html = String::from(r#"<div itemscope itemtype="http://schema.org/EventReservation">"#);
        for _ in 0..20 {
            html.push_str(&format!(
                r#"<div itemprop="{names}" itemscope><meta itemprop="v" content="{}">"#,
                "x".repeat(100)
            ));
        }
        let items = parse(&html);
        assert_eq!(items.len(), 1);
        assert!(serde_json::to_string(&items[0]).unwrap().len() < 4 * MAX_MICRODATA_BYTES);
    }
}
