//! A tenant's event catalogue: the events its apps may send, the type of
//! each property, and which properties are personal data.
//!
//! The catalogue decides two things. At ingest, an event it does not name is
//! refused (422) or kept in the `unknown` bucket, as the tenant chose, and a
//! property of the wrong type is refused. At export, it gives the lake its
//! typed columns and says what happens to personal data: pseudonymised
//! (keyed HMAC, so one person still joins across files) or dropped. The raw
//! value of personal data never reaches the lake.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Properties that are personal data wherever they appear, in any event,
/// named in the catalogue or not: they are pseudonymised unless the
/// catalogue drops them, and a catalogue cannot declare them clear.
pub const PERSONAL_PROPERTIES: [&str; 5] = ["email", "phone", "name", "ip_address", "passport_number"];

/// At most this many events in a catalogue, and properties per event: the
/// lake's columns are the union of the properties, and must stay a table a
/// warehouse can scan.
pub const MAX_EVENTS: usize = 200;
pub const MAX_PROPERTIES: usize = 64;

/// Event and property names: lowercase snake_case, 1 to 64 characters, so
/// they are column names in any warehouse.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";

/// Whether `name` is a valid event or property name ([`NAME_PATTERN`]).
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The events a tenant's apps may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// What happens to an event the catalogue does not name: `reject` (the
    /// batch is a 422 naming it) or `accept` (it is kept, marked unknown,
    /// and exported with its properties as JSON).
    #[serde(default)]
    pub unknown_events: UnknownEvents,
    /// The known events, by name.
    pub events: BTreeMap<String, EventSpec>,
    /// How long the tenant's events are kept, in the lake and raw, in days:
    /// 730 (two years) unless the tenant keeps them for less. The daily
    /// `events_retention` job removes what is older.
    #[serde(default = "default_retention_days")]
    #[schema(minimum = 1, maximum = 730)]
    pub retention_days: u32,
}

/// Two years, the longest events are kept.
pub const MAX_RETENTION_DAYS: u32 = 730;

fn default_retention_days() -> u32 {
    MAX_RETENTION_DAYS
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnknownEvents {
    #[default]
    Reject,
    Accept,
}

/// One known event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Its properties, by name. A property the event sends but the
    /// catalogue does not name is kept as JSON in the lake's `extra`
    /// column (personal data by name pseudonymised there too).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertySpec>,
}

/// One property of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertySpec {
    #[serde(rename = "type")]
    pub kind: PropertyType,
    /// Whether it is personal data, and what the lake keeps of it.
    #[serde(default)]
    pub pii: Pii,
}

/// A property's type, and its column's type in the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    String,
    Integer,
    Number,
    Boolean,
    /// An RFC 3339 time.
    Timestamp,
}

/// What the lake keeps of a property.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pii {
    /// Not personal data: kept as sent.
    #[default]
    None,
    /// Replaced by a keyed HMAC-SHA-256 of the value (a per-tenant key), so
    /// that the same value still joins across files.
    Pseudonymise,
    /// Left out of the lake.
    Drop,
}

/// A catalogue that cannot be used, with the JSON path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CatalogueError {
    pub field: String,
    pub message: String,
}

impl Catalogue {
    /// The catalogue every tenant starts with (product.md).
    pub fn default_catalogue() -> Catalogue {
        use PropertyType::{Integer, Number, String as Text};
        let clear = |kind| PropertySpec { kind, pii: Pii::None };
        let personal = |pii| PropertySpec { kind: Text, pii };
        let event = |properties: &[(&str, PropertySpec)]| EventSpec {
            properties: properties.iter().map(|(name, spec)| ((*name).to_owned(), *spec)).collect(),
        };
        let money = [("value", clear(Number)), ("currency", clear(Text))];
        let events = [
            (
                "search",
                event(&[
                    ("query", clear(Text)),
                    ("origin", clear(Text)),
                    ("destination", clear(Text)),
                    ("results", clear(Integer)),
                ]),
            ),
            ("booking_started", event(&[("booking_id", clear(Text)), ("provider", clear(Text)), money[0], money[1]])),
            (
                "payment",
                event(&[
                    ("booking_id", clear(Text)),
                    ("method", clear(Text)),
                    money[0],
                    money[1],
                    ("email", personal(Pii::Pseudonymise)),
                ]),
            ),
            (
                "booking_confirmed",
                event(&[
                    ("booking_id", clear(Text)),
                    ("provider", clear(Text)),
                    money[0],
                    money[1],
                    ("email", personal(Pii::Pseudonymise)),
                    ("name", personal(Pii::Pseudonymise)),
                    ("phone", personal(Pii::Pseudonymise)),
                    ("passport_number", personal(Pii::Drop)),
                ]),
            ),
            ("barcode_scanned", event(&[("format", clear(Text)), ("booking_id", clear(Text))])),
            ("cart_item_added", event(&[("item_id", clear(Text)), ("quantity", clear(Integer)), money[0], money[1]])),
        ];
        Catalogue {
            unknown_events: UnknownEvents::Reject,
            events: events.into_iter().map(|(name, spec)| (name.to_owned(), spec)).collect(),
            retention_days: MAX_RETENTION_DAYS,
        }
    }

    /// Checks what serde cannot: names, sizes, one type per property name
    /// across events (it is one column in the lake), and personal data
    /// never declared clear.
    pub fn validate(&self) -> Result<(), CatalogueError> {
        let error = |field: String, message: &str| Err(CatalogueError { field, message: message.to_owned() });
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            return error("retention_days".into(), &format!("from 1 to {MAX_RETENTION_DAYS} days"));
        }
        if self.events.len() > MAX_EVENTS {
            return error("events".into(), &format!("at most {MAX_EVENTS} events"));
        }
        let mut types: BTreeMap<&str, (PropertyType, &str)> = BTreeMap::new();
        for (event, spec) in &self.events {
            if !is_valid_name(event) {
                return error(format!("events.{event}"), &format!("an event name must match {NAME_PATTERN}"));
            }
            if spec.properties.len() > MAX_PROPERTIES {
                return error(format!("events.{event}.properties"), &format!("at most {MAX_PROPERTIES} properties"));
            }
            for (property, property_spec) in &spec.properties {
                let field = format!("events.{event}.properties.{property}");
                if !is_valid_name(property) || RESERVED_COLUMNS.contains(&property.as_str()) {
                    return error(
                        field,
                        &format!(
                            "a property name must match {NAME_PATTERN} and not be one of the lake's own columns ({})",
                            RESERVED_COLUMNS.join(", ")
                        ),
                    );
                }
                if PERSONAL_PROPERTIES.contains(&property.as_str()) && property_spec.pii == Pii::None {
                    return error(
                        format!("{field}.pii"),
                        "is personal data by its name: `pseudonymise` or `drop`, never `none`",
                    );
                }
                match types.get(property.as_str()) {
                    Some((kind, first)) if *kind != property_spec.kind => {
                        return error(
                            format!("{field}.type"),
                            &format!("is {kind:?} in `{first}`: a property has one type across events (one column)"),
                        )
                    }
                    Some(_) => {}
                    None => {
                        types.insert(property, (property_spec.kind, event));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every named property across the events, with its type and what the
    /// lake keeps of it (the strictest any event asks), in name order: the
    /// lake's property columns.
    pub fn columns(&self) -> Vec<(String, PropertyType, Pii)> {
        let mut columns: BTreeMap<&str, (PropertyType, Pii)> = BTreeMap::new();
        for spec in self.events.values() {
            for (name, property) in &spec.properties {
                let entry = columns.entry(name).or_insert((property.kind, property.pii));
                entry.1 = stricter(entry.1, property.pii);
            }
        }
        columns.into_iter().map(|(name, (kind, pii))| (name.to_owned(), kind, pii)).collect()
    }

    /// What the lake keeps of `property` of an event the catalogue does not
    /// type (an unknown event's, or an extra one).
    pub fn untyped_pii(property: &str) -> Pii {
        if PERSONAL_PROPERTIES.contains(&property) || property == "user_id" {
            Pii::Pseudonymise
        } else {
            Pii::None
        }
    }
}

/// The lake's own columns, which no property may shadow.
pub const RESERVED_COLUMNS: [&str; 12] = [
    "event_id",
    "event_name",
    "known",
    "user_id",
    "occurred_at",
    "received_at",
    "session_id",
    "device_platform",
    "device_app_version",
    "device_os_version",
    "device_model",
    "extra",
];

fn stricter(a: Pii, b: Pii) -> Pii {
    match (a, b) {
        (Pii::Drop, _) | (_, Pii::Drop) => Pii::Drop,
        (Pii::Pseudonymise, _) | (_, Pii::Pseudonymise) => Pii::Pseudonymise,
        _ => Pii::None,
    }
}

/// Whether `value` is of `kind`, as an event sends it in JSON.
pub fn value_fits(kind: PropertyType, value: &Value) -> bool {
    match kind {
        PropertyType::String => value.is_string(),
        PropertyType::Integer => {
            value.is_i64() || value.is_u64() && value.as_u64().is_some_and(|n| n <= i64::MAX as u64)
        }
        PropertyType::Number => value.is_number(),
        PropertyType::Boolean => value.is_boolean(),
        PropertyType::Timestamp => {
            value.as_str().is_some_and(|text| chrono::DateTime::parse_from_rfc3339(text).is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalogue_is_valid_and_knows_the_product_events() {
        let catalogue = Catalogue::default_catalogue();
        assert_eq!(catalogue.validate(), Ok(()));
        for name in ["search", "booking_started", "payment", "booking_confirmed", "barcode_scanned", "cart_item_added"]
        {
            assert!(catalogue.events.contains_key(name), "{name}");
        }
        let columns = catalogue.columns();
        let email = columns.iter().find(|(name, ..)| name == "email").map(|c| c.2);
        assert_eq!(email, Some(Pii::Pseudonymise));
        let passport = columns.iter().find(|(name, ..)| name == "passport_number").map(|c| c.2);
        assert_eq!(passport, Some(Pii::Drop));
    }

    /// The field the default catalogue's check names once `search` has the
    /// property `name` of `kind`, in clear.
    fn refused_with(name: &str, kind: PropertyType) -> Option<String> {
        let mut catalogue = Catalogue::default_catalogue();
        let spec = PropertySpec { kind, pii: Pii::None };
        catalogue.events.entry("search".into()).or_default().properties.insert(name.into(), spec);
        catalogue.validate().err().map(|e| e.field)
    }

    #[test]
    fn personal_data_cannot_be_declared_clear() {
        let field = refused_with("email", PropertyType::String);
        assert_eq!(field.as_deref(), Some("events.search.properties.email.pii"));
    }

    #[test]
    fn a_property_has_one_type_across_events() {
        let field = refused_with("currency", PropertyType::Integer);
        assert_eq!(field.as_deref(), Some("events.search.properties.currency.type"));
    }

    #[test]
    fn names_are_snake_case_and_never_the_lakes_own_columns() {
        assert!(is_valid_name("booking_started"));
        for bad in ["", "Booking", "1st", "a-b", "a b", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert_eq!(refused_with("user_id", PropertyType::String).as_deref(), Some("events.search.properties.user_id"));
    }

    #[test]
    fn values_are_checked_against_their_type() {
        use serde_json::json;
        assert!(value_fits(PropertyType::Integer, &json!(3)));
        assert!(!value_fits(PropertyType::Integer, &json!(3.5)));
        assert!(!value_fits(PropertyType::Integer, &json!(u64::MAX)));
        assert!(value_fits(PropertyType::Number, &json!(3.5)));
        assert!(value_fits(PropertyType::Timestamp, &json!("2026-12-05T08:00:00Z")));
        assert!(!value_fits(PropertyType::Timestamp, &json!("yesterday")));
        assert!(!value_fits(PropertyType::String, &json!({"a": 1})));
    }
}
