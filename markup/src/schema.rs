//! schema.org vocabulary helpers shared by the JSON-LD and microdata readers:
//! type names, URL prefixes, and forgiving accessors over `serde_json::Value`.
//!
//! The accessors encode the tolerance the normaliser needs everywhere: a
//! property that should hold one thing may hold an array of them (take the
//! first), a number where text was expected is text, `null` and blank strings
//! are absent, and an object standing for a name may just be the name.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::Kind;

/// The reservation types this crate understands, by schema.org name.
const RESERVATION_TYPES: [(&str, Kind); 7] = [
    ("FlightReservation", Kind::Flight),
    ("LodgingReservation", Kind::Lodging),
    ("RentalCarReservation", Kind::RentalCar),
    ("TrainReservation", Kind::Train),
    ("BusReservation", Kind::Bus),
    ("EventReservation", Kind::Event),
    ("FoodEstablishmentReservation", Kind::Food),
];

/// `http://schema.org/Foo`, `https://www.schema.org/Foo`, `schema:Foo` and
/// `Foo` all name `Foo`. Other vocabularies' URLs are returned unchanged
/// (trimmed): they are not ours to shorten.
pub(crate) fn strip_prefix(name: &str) -> &str {
    let name = name.trim();
    let lower_starts = |s: &str, p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if lower_starts(name, "schema:") {
        return name.get("schema:".len()..).unwrap_or(name);
    }
    let mut rest = name;
    for scheme in ["http://", "https://"] {
        if lower_starts(rest, scheme) {
            rest = rest.get(scheme.len()..).unwrap_or(rest);
            break;
        }
    }
    if lower_starts(rest, "www.") {
        rest = rest.get(4..).unwrap_or(rest);
    }
    if lower_starts(rest, "schema.org/") {
        return rest.get("schema.org/".len()..).unwrap_or(name);
    }
    name
}

/// The reservation kind named by one type name (any prefix, any case).
pub(crate) fn kind_of_type(name: &str) -> Option<Kind> {
    let name = strip_prefix(name);
    RESERVATION_TYPES.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).map(|(_, k)| *k)
}

/// The reservation kind of an object: the first recognised entry of its
/// `@type` (a string or an array of them).
pub(crate) fn kind_of(obj: &Map<String, Value>) -> Option<Kind> {
    match obj.get("@type")? {
        Value::String(t) => kind_of_type(t),
        Value::Array(types) => types.iter().filter_map(Value::as_str).find_map(kind_of_type),
        _ => None,
    }
}

/// A property of an object; an array stands for its first non-null element,
/// `null` for nothing.
pub(crate) fn get<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    first(value?.as_object()?.get(key)?)
}

/// `get` along a path of keys.
pub(crate) fn at<'a>(value: Option<&'a Value>, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value?, |v, key| get(Some(v), key))
}

/// A value, or the first non-null element of an array of them.
pub(crate) fn first(value: &Value) -> Option<&Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => items.iter().find(|v| !v.is_null()),
        other => Some(other),
    }
}

/// Text content: a trimmed, non-blank string; a number as written; a JSON-LD
/// value object (`{"@value": …}`); the first such element of an array.
pub(crate) fn text(value: Option<&Value>) -> Option<Cow<'_, str>> {
    match first(value?)? {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then_some(Cow::Borrowed(s))
        }
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        obj @ Value::Object(_) => text(get(Some(obj), "@value")),
        _ => None,
    }
}

/// The name of a thing: its `name`, or the thing itself when it is given as
/// plain text (`"airline": "United"`).
pub(crate) fn name_of(value: Option<&Value>) -> Option<Cow<'_, str>> {
    let value = first(value?)?;
    if value.is_object() {
        text(get(Some(value), "name"))
    } else {
        text(Some(value))
    }
}

/// Removes schema.org URL prefixes from every `@type` in a value, to
/// `max_depth` levels of nesting (deeper levels are left as they are).
pub(crate) fn deprefix_types(value: &mut Value, max_depth: usize) {
    if max_depth == 0 {
        return;
    }
    match value {
        Value::Object(obj) => {
            for (key, v) in obj.iter_mut() {
                if key == "@type" {
                    match v {
                        Value::String(t) => shorten(t),
                        Value::Array(types) => {
                            for t in types.iter_mut() {
                                if let Value::String(t) = t {
                                    shorten(t);
                                }
                            }
                        }
                        _ => {}
                    }
                } else {
                    deprefix_types(v, max_depth - 1);
                }
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                deprefix_types(v, max_depth - 1);
            }
        }
        _ => {}
    }
}

fn shorten(t: &mut String) {
    let short = strip_prefix(t);
    if short.len() != t.len() {
        *t = short.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(strip_prefix("http://schema.org/FlightReservation"), "FlightReservation");
        assert_eq!(strip_prefix("https://schema.org/FlightReservation"), "FlightReservation");
        assert_eq!(strip_prefix("HTTPS://WWW.Schema.org/Flight"), "Flight");
        assert_eq!(strip_prefix("schema:Flight"), "Flight");
        assert_eq!(strip_prefix(" Flight "), "Flight");
        assert_eq!(strip_prefix("http://example.com/Flight"), "http://example.com/Flight");
        assert_eq!(strip_prefix("http://"), "http://");
        assert_eq!(strip_prefix("é"), "é");
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_of_type("http://schema.org/LodgingReservation"), Some(Kind::Lodging));
        assert_eq!(kind_of_type("foodestablishmentreservation"), Some(Kind::Food));
        assert_eq!(kind_of_type("Reservation"), None);
        let obj = json!({"@type": ["Thing", "https://schema.org/BusReservation"]});
        assert_eq!(kind_of(obj.as_object().unwrap()), Some(Kind::Bus));
        let obj = json!({"@type": 3});
        assert_eq!(kind_of(obj.as_object().unwrap()), None);
    }

    #[test]
    fn accessors() {
        let v = json!({
            "a": [null, {"name": " A "}],
            "n": 42,
            "blank": "  ",
            "lit": {"@value": "x"},
            "s": "Plain",
        });
        assert_eq!(name_of(get(Some(&v), "a")).as_deref(), Some("A"));
        assert_eq!(text(get(Some(&v), "n")).as_deref(), Some("42"));
        assert_eq!(text(get(Some(&v), "blank")), None);
        assert_eq!(text(get(Some(&v), "lit")).as_deref(), Some("x"));
        assert_eq!(name_of(get(Some(&v), "s")).as_deref(), Some("Plain"));
        assert_eq!(at(Some(&v), &["a", "name"]).and_then(Value::as_str), Some(" A "));
        assert_eq!(at(Some(&v), &["missing", "name"]), None);
        assert_eq!(at(None, &["a"]), None);
    }

    #[test]
    fn deprefixes_nested_types() {
        let mut v = json!({"@type": "http://schema.org/FlightReservation",
            "reservationFor": [{"@type": ["https://schema.org/Flight", "http://example.com/X"]}]});
        deprefix_types(&mut v, 64);
        assert_eq!(
            v,
            json!({"@type": "FlightReservation",
            "reservationFor": [{"@type": ["Flight", "http://example.com/X"]}]})
        );
    }
}
