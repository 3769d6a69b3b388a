//! The sample year (`assets/sample`): `longhaul demo` loads it, tests count
//! it by hand, and the report bench repeats it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{InvalidField, ReservationFields, ReservationStatus, ReservationType};

/// The sample year as JSON: an array of `POST /v1/reservations` bodies.
pub const SAMPLE_YEAR_JSON: &str = include_str!("../../../assets/sample/reservations-2026.json");

/// One `POST /v1/reservations` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(rename = "type")]
    kind: ReservationType,
    reservation_number: String,
    provider: String,
    status: Option<ReservationStatus>,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    details: Option<Value>,
    city: Option<String>,
    country: Option<String>,
    origin: Option<String>,
    destination: Option<String>,
}

/// The sample year's reservations, validated.
pub fn sample_year() -> Result<Vec<ReservationFields>, InvalidField> {
    let bodies: Vec<Body> = serde_json::from_str(SAMPLE_YEAR_JSON)
        .map_err(|err| InvalidField { field: "sample", message: err.to_string() })?;
    bodies
        .into_iter()
        .map(|body| {
            ReservationFields {
                kind: body.kind,
                reservation_number: body.reservation_number,
                provider: body.provider,
                status: body.status.unwrap_or(ReservationStatus::Confirmed),
                starts_at: body.starts_at,
                ends_at: body.ends_at,
                details: body.details.unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                city: body.city,
                country: body.country,
                origin: body.origin,
                destination: body.destination,
            }
            .validate()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_year_is_valid() {
        assert_eq!(super::sample_year().map(|year| year.len()), Ok(33));
    }
}
