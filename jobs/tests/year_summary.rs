//! A user's year in figures, on both databases, against the sample year
//! (`assets/sample/reservations-2026.json`) counted by hand.

use longhaul_jobs::{
    testing::{Backend, TestStore},
    travel::{sample_year, ReservationSource, YearSummary, Zone},
};

longhaul_jobs::on_every_backend!(
    the_sample_year_adds_up_to_the_figures_counted_by_hand,
    an_empty_year_is_all_zeros,
    another_users_reservations_never_count,
);

async fn load_sample(store: &TestStore, tenant: &str, user: &str) {
    let year = sample_year().expect("valid sample data");
    store.insert_reservations(tenant, user, ReservationSource::Manual, &year).await.expect("insert");
}

async fn summary(store: &TestStore, tenant: &str, user: &str, year: i32) -> YearSummary {
    store.year_summary(tenant, user, year, Zone::UTC).await.expect("a summary")
}

fn names(ranked: &[longhaul_jobs::travel::Ranked]) -> Vec<(&str, i64)> {
    ranked.iter().map(|r| (r.name.as_str(), r.count)).collect()
}

async fn the_sample_year_adds_up_to_the_figures_counted_by_hand(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    load_sample(&store, "acme", "ana").await;
    let year = summary(&store, "acme", "ana", 2026).await;

    // 33 bookings, one of them a cancelled flight (AR1241).
    assert_eq!((year.reservations, year.cancelled), (32, 1));
    let by_type: Vec<(&str, i64)> = year.by_type.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        by_type,
        [("bus", 2), ("event", 3), ("flight", 10), ("food", 4), ("lodging", 8), ("rental_car", 2), ("train", 3)]
    );
    // New York 4, Lisbon 4, Porto 3, Rio 3, Buenos Aires 4, Madrid 3, Paris 4, Tokyo 5.
    assert_eq!(year.hotel_nights, 30);
    assert_eq!((year.flights, year.flights_without_distance), (10, 0));
    // The ten legs' great-circle distances, summed independently (haversine,
    // R = 6,371.0088 km, the table's coordinates): 89,693.9 km.
    assert_eq!(year.distance_km, 89_694);
    assert_eq!(year.countries, ["AR", "BR", "ES", "FR", "JP", "PT", "US"]);
    assert_eq!(
        year.cities,
        [
            "Buenos Aires",
            "Kyoto",
            "Lisbon",
            "Madrid",
            "New York",
            "Paris",
            "Porto",
            "Rio de Janeiro",
            "Sintra",
            "São Paulo",
            "Tokyo",
            "Toledo"
        ]
    );
    assert_eq!(
        names(&year.top_airlines),
        [("ANA", 2), ("Aerolíneas Argentinas", 2), ("LATAM Airlines", 2), ("TAP Air Portugal", 2), ("Air France", 1)]
    );
    assert_eq!(
        names(&year.top_hotels),
        [
            ("Alvear Palace Hotel", 1),
            ("Copacabana Palace", 1),
            ("Hotel Avenida Palace", 1),
            ("Hotel Urban", 1),
            ("Hôtel Le Marais", 1)
        ]
    );
    assert_eq!(names(&year.top_car_rentals), [("Europcar", 1), ("Sixt", 1)]);
    assert_eq!(year.by_month, [0, 5, 0, 0, 7, 0, 4, 0, 4, 7, 0, 5]);
    assert_eq!(year.busiest_month, Some(5), "May and October tie at 7; the earlier wins");
    assert_eq!(year.trips, 6);
    let first = year.first_trip.as_ref().expect("a first trip");
    assert_eq!(first.name, "New York, February 2026");
    assert_eq!(
        (first.starts_at.to_rfc3339(), first.ends_at.to_rfc3339()),
        ("2026-02-12T22:30:00+00:00".into(), "2026-02-18T11:20:00+00:00".into())
    );
    assert_eq!(year.last_trip.as_ref().map(|t| t.name.as_str()), Some("Tokyo, December 2026"));
    assert!(!year.is_empty());
}

async fn an_empty_year_is_all_zeros(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    load_sample(&store, "acme", "ana").await;
    let year = summary(&store, "acme", "ana", 2025).await;
    assert!(year.is_empty());
    assert_eq!((year.reservations, year.trips, year.hotel_nights, year.distance_km), (0, 0, 0, 0));
    assert!(year.by_type.values().all(|n| *n == 0) && year.by_type.len() == 7, "every type, at zero");
    assert_eq!(year.by_month, [0; 12]);
    assert_eq!((year.busiest_month, year.first_trip.clone()), (None, None));
    assert!(year.countries.is_empty() && year.top_airlines.is_empty());
}

async fn another_users_reservations_never_count(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    load_sample(&store, "acme", "ana").await;
    for (tenant, user) in [("acme", "bob"), ("other", "ana")] {
        assert!(summary(&store, tenant, user, 2026).await.is_empty(), "{tenant}/{user}");
    }
}
