//! A user's year in figures: what the `year_summary` report shows.
//!
//! The database does the counting (a handful of `GROUP BY` queries, see the
//! backends' `year_figures`); this module turns those few rows into the
//! summary. A user with thousands of reservations costs the same memory as
//! one with ten.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{airports, ReservationType, Zone};

/// How many names each "top" list keeps.
pub const TOP: usize = 5;

/// The counted rows of one user's year, as the backends return them.
/// Everything but `cancelled` counts confirmed reservations only.
#[derive(Debug, Clone, Default)]
pub struct YearFigures {
    pub by_type: Vec<(ReservationType, i64)>,
    pub cancelled: i64,
    /// (month 1–12, reservations starting in it).
    pub by_month: Vec<(u32, i64)>,
    pub hotel_nights: i64,
    /// (origin, destination, flights) per route; codes may be missing.
    pub routes: Vec<(Option<String>, Option<String>, i64)>,
    /// Distinct (city, country) pairs.
    pub places: Vec<(Option<String>, Option<String>)>,
    /// (type, provider, reservations) for flights, stays and rentals.
    pub providers: Vec<(ReservationType, String, i64)>,
    /// The trips that start in the year, earliest first.
    pub trips: Vec<TripSpan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TripSpan {
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Ranked {
    pub name: String,
    pub count: i64,
}

/// The figures of a year, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct YearSummary {
    pub year: i32,
    /// The zone the year and its months are the user's in: an IANA name.
    #[schema(value_type = String)]
    pub time_zone: Zone,
    /// Confirmed reservations starting in the year.
    pub reservations: i64,
    pub cancelled: i64,
    /// Per type, every type listed (zeros included), in a fixed order.
    pub by_type: BTreeMap<String, i64>,
    pub trips: i64,
    pub first_trip: Option<TripSpan>,
    pub last_trip: Option<TripSpan>,
    pub hotel_nights: i64,
    pub flights: i64,
    /// Great-circle distance over the flights whose airports are known,
    /// rounded to the kilometre.
    pub distance_km: i64,
    /// Flights left out of the distance: an airport missing or unknown.
    pub flights_without_distance: i64,
    pub countries: Vec<String>,
    pub cities: Vec<String>,
    pub top_airlines: Vec<Ranked>,
    pub top_hotels: Vec<Ranked>,
    pub top_car_rentals: Vec<Ranked>,
    /// Reservations starting in each month, January first.
    pub by_month: Vec<i64>,
    /// The month (1–12) with the most reservations; the earliest on a tie.
    pub busiest_month: Option<u32>,
}

impl YearSummary {
    pub fn assemble(year: i32, time_zone: Zone, figures: YearFigures) -> YearSummary {
        let mut by_type: BTreeMap<String, i64> =
            ReservationType::ALL.iter().map(|kind| (kind.as_str().to_owned(), 0)).collect();
        for (kind, count) in &figures.by_type {
            *by_type.entry(kind.as_str().to_owned()).or_default() += count;
        }
        let reservations = figures.by_type.iter().map(|(_, n)| n).sum();
        let flights = figures.routes.iter().map(|(_, _, n)| n).sum();
        let (mut distance, mut without) = (0.0, 0);
        for (origin, destination, count) in &figures.routes {
            match (origin, destination) {
                (Some(from), Some(to)) => match airports::distance_km(from, to) {
                    Some(km) => distance += km * *count as f64,
                    None => without += count,
                },
                _ => without += count,
            }
        }
        let mut by_month = vec![0; 12];
        for (month, count) in &figures.by_month {
            if let Some(slot) = by_month.get_mut((*month as usize).wrapping_sub(1)) {
                *slot += count;
            }
        }
        let busiest = by_month.iter().copied().max().filter(|most| *most > 0);
        let busiest_month = busiest.and_then(|most| by_month.iter().position(|n| *n == most)).map(|i| i as u32 + 1);
        let countries: BTreeSet<String> = figures.places.iter().filter_map(|(_, country)| country.clone()).collect();
        let cities: BTreeSet<String> = figures.places.iter().filter_map(|(city, _)| city.clone()).collect();
        let top = |kind: ReservationType| {
            let mut ranked: Vec<Ranked> = figures
                .providers
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, name, count)| Ranked { name: name.clone(), count: *count })
                .collect();
            // Most first, then by name: the same data, the same order.
            ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
            ranked.truncate(TOP);
            ranked
        };
        YearSummary {
            year,
            time_zone,
            reservations,
            cancelled: figures.cancelled,
            by_type,
            trips: figures.trips.len() as i64,
            first_trip: figures.trips.first().cloned(),
            last_trip: figures.trips.last().cloned(),
            hotel_nights: figures.hotel_nights,
            flights,
            distance_km: distance.round() as i64,
            flights_without_distance: without,
            countries: countries.into_iter().collect(),
            cities: cities.into_iter().collect(),
            top_airlines: top(ReservationType::Flight),
            top_hotels: top(ReservationType::Lodging),
            top_car_rentals: top(ReservationType::RentalCar),
            by_month,
            busiest_month,
        }
    }

    /// Whether the year has nothing to show.
    pub fn is_empty(&self) -> bool {
        self.reservations == 0 && self.cancelled == 0
    }
}
