//! Airports by IATA code, and great-circle distances between them.
//!
//! The table (`assets/airports`, MIT-licensed, see its README) is built into
//! the binary and parsed once, on first use.

use std::{collections::HashMap, sync::OnceLock};

/// The mean radius of the Earth (IUGG), in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6_371.008_8;

const AIRPORTS_CSV: &str = include_str!("../../../assets/airports/airports.csv");

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Airport {
    pub iata: String,
    pub name: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    pub tz: String,
}

fn table() -> &'static HashMap<String, Airport> {
    static TABLE: OnceLock<HashMap<String, Airport>> = OnceLock::new();
    TABLE.get_or_init(|| {
        csv::Reader::from_reader(AIRPORTS_CSV.as_bytes())
            .deserialize::<Airport>()
            // The table is ours and checked by a test; a bad row is skipped
            // rather than taking the process down.
            .filter_map(Result::ok)
            .map(|airport| (airport.iata.clone(), airport))
            .collect()
    })
}

/// The airport with this IATA code (any case), if the table has it.
pub fn airport(iata: &str) -> Option<&'static Airport> {
    table().get(&iata.trim().to_ascii_uppercase())
}

/// Every airport of the table, in no order.
pub fn all() -> impl Iterator<Item = &'static Airport> {
    table().values()
}

/// The great-circle distance between two points (haversine), in kilometres.
pub fn great_circle_km(from: (f64, f64), to: (f64, f64)) -> f64 {
    let (lat1, lon1) = (from.0.to_radians(), from.1.to_radians());
    let (lat2, lon2) = (to.0.to_radians(), to.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The great-circle distance between two airports, if both are known.
pub fn distance_km(from_iata: &str, to_iata: &str) -> Option<f64> {
    let (from, to) = (airport(from_iata)?, airport(to_iata)?);
    Some(great_circle_km((from.lat, from.lon), (to.lat, to.lon)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table_parses() {
        let rows = AIRPORTS_CSV.lines().count() - 1;
        assert_eq!(table().len(), rows);
        assert!(rows > 7_000);
    }

    #[test]
    fn airports_are_found_by_code_in_any_case() {
        let lisbon = airport("lis").expect("Lisbon");
        assert_eq!((lisbon.city.as_str(), lisbon.country.as_str()), ("Lisbon", "PT"));
        assert!(airport("ZZZ").is_none());
    }

    #[test]
    fn distances_match_ones_computed_by_hand() {
        // Haversine with R = 6,371.0088 km, computed independently (Python)
        // from the table's coordinates.
        for (from, to, km) in [("GRU", "LIS", 7_935.3), ("JFK", "LHR", 5_539.6), ("GRU", "HND", 18_539.0)] {
            let got = distance_km(from, to).expect("known airports");
            assert!((got - km).abs() < 0.1, "{from}-{to}: {got} km, expected {km}");
            assert!((distance_km(to, from).expect("known") - got).abs() < 1e-9, "symmetric");
        }
        assert_eq!(distance_km("LIS", "LIS"), Some(0.0));
        assert_eq!(distance_km("LIS", "ZZZ"), None);
    }
}
