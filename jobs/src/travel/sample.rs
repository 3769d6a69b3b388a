//! The sample year (`assets/sample`): `longhaul demo` loads it, tests count
//! it by hand, and the report bench repeats it.

use super::{InvalidField, NewReservation, ReservationFields};

/// The sample year as JSON: an array of `POST /v1/reservations` bodies.
pub const SAMPLE_YEAR_JSON: &str = include_str!("../../../assets/sample/reservations-2026.json");

/// The sample year's reservations, validated.
pub fn sample_year() -> Result<Vec<ReservationFields>, InvalidField> {
    let bodies: Vec<NewReservation> = serde_json::from_str(SAMPLE_YEAR_JSON)
        .map_err(|err| InvalidField { field: "sample", message: err.to_string() })?;
    bodies.into_iter().map(NewReservation::validate).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_year_is_valid() {
        assert_eq!(super::sample_year().map(|year| year.len()), Ok(33));
    }
}
