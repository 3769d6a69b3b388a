//! A month of a tenant's vendors and the reservations' history, on both
//! databases, against a small month counted by hand.

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    model::Scope,
    testing::{Backend, TestStore},
    travel::{
        ChangeOrigin, Reservation, ReservationFields, ReservationSource, ReservationStatus, ReservationType,
        VendorAnalytics,
    },
};
use serde_json::json;
use uuid::Uuid;

longhaul_jobs::on_every_backend!(
    a_month_adds_up_to_the_figures_counted_by_hand,
    every_change_is_recorded_once_with_its_source,
    a_month_without_reservations_is_empty,
);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("a valid time").with_timezone(&Utc)
}

fn booking(kind: ReservationType, provider: &str, number: &str, starts_at: &str) -> ReservationFields {
    ReservationFields {
        kind,
        reservation_number: number.into(),
        provider: provider.into(),
        status: ReservationStatus::Confirmed,
        starts_at: at(starts_at),
        ends_at: None,
        details: json!({}),
        city: Some("Lisbon".into()),
        country: Some("PT".into()),
        origin: None,
        destination: None,
        start_zone: None,
        end_zone: None,
    }
}

fn user(tenant: &str, user: &str) -> Scope {
    Scope::User { tenant_id: tenant.into(), user_id: user.into() }
}

async fn add(store: &TestStore, tenant: &str, who: &str, fields: ReservationFields) -> Reservation {
    store.insert_reservation(tenant, who, ReservationSource::Email, fields).await.expect("insert")
}

/// Applies `change` to a reservation as `source` saw it.
async fn change(
    store: &TestStore,
    r: &Reservation,
    source: ReservationSource,
    change: impl FnOnce(&mut ReservationFields),
) -> Reservation {
    let mut fields = r.fields();
    change(&mut fields);
    let origin = ChangeOrigin { source, changed_at: Some(at("2026-09-15T08:00:00Z")) };
    store
        .update_reservation(&user(&r.tenant_id, &r.user_id), r.id, fields, origin)
        .await
        .expect("update")
        .expect("the reservation is there")
}

/// acme's October 2026, and the neighbours that must not count in it.
async fn october(store: &TestStore) -> Vec<Reservation> {
    use ReservationType::*;
    let tap1 = add(store, "acme", "ana", booking(Flight, "TAP Air Portugal", "TP1", "2026-10-03T09:00:00Z")).await;
    let tap2 = add(store, "acme", "ana", booking(Flight, "TAP Air Portugal", "TP1", "2026-10-20T18:00:00Z")).await;
    let hotel = add(store, "acme", "ana", booking(Lodging, "Hilton", "H-77", "2026-10-03T15:00:00Z")).await;
    let mut cancelled = booking(RentalCar, "Hertz", "HZ-1", "2026-10-04T10:00:00Z");
    cancelled.status = ReservationStatus::Cancelled;
    add(store, "acme", "ana", cancelled).await;
    // bea: the last minute of October counts; the first of November and the
    // last of September do not.
    let last = add(store, "acme", "bea", booking(Flight, "TAP Air Portugal", "TP9", "2026-10-31T23:59:59Z")).await;
    add(store, "acme", "bea", booking(Flight, "TAP Air Portugal", "TP8", "2026-11-01T00:00:00Z")).await;
    add(store, "acme", "bea", booking(Lodging, "Hilton", "H-1", "2026-09-30T23:59:59Z")).await;
    let rental = add(store, "acme", "bea", booking(RentalCar, "Hertz", "HZ-2", "2026-10-10T10:00:00Z")).await;
    // Another tenant's October, with a change: never acme's.
    let other = add(store, "globex", "ana", booking(Flight, "TAP Air Portugal", "TP1", "2026-10-03T09:00:00Z")).await;
    change(store, &other, ReservationSource::Agency, |f| f.status = ReservationStatus::Cancelled).await;

    // The agency moves TP1's first leg twice; the hotel sends a new email
    // with a later check-out; ana fixes the second leg's city herself (not
    // the vendor's doing); the rental company cancels bea's car.
    let tap1 = change(store, &tap1, ReservationSource::Agency, |f| f.starts_at = at("2026-10-03T10:30:00Z")).await;
    let tap1 = change(store, &tap1, ReservationSource::Agency, |f| f.starts_at = at("2026-10-03T11:00:00Z")).await;
    let hotel = change(store, &hotel, ReservationSource::Email, |f| f.ends_at = Some(at("2026-10-08T11:00:00Z"))).await;
    let tap2 = change(store, &tap2, ReservationSource::Manual, |f| f.city = Some("São Paulo".into())).await;
    let rental = change(store, &rental, ReservationSource::Agency, |f| f.status = ReservationStatus::Cancelled).await;
    // The agency reports bea's flight unchanged: nothing to record.
    let last = change(store, &last, ReservationSource::Agency, |_| {}).await;
    vec![tap1, tap2, hotel, rental, last]
}

async fn a_month_adds_up_to_the_figures_counted_by_hand(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    october(&store).await;
    let month: VendorAnalytics = store.vendor_analytics("acme", "2026-10").await.expect("analytics");
    let rows: Vec<(&str, &str, i64, i64, i64, i64)> = month
        .rows
        .iter()
        .map(|r| (r.vendor.as_str(), r.kind.as_str(), r.reservations, r.cancelled, r.changed, r.changes))
        .collect();
    assert_eq!(
        rows,
        [
            // TP1 (two legs) and TP9; the first leg changed twice.
            ("TAP Air Portugal", "flight", 3, 0, 1, 2),
            // ana's car booked cancelled, bea's cancelled by the agency.
            ("Hertz", "rental_car", 2, 2, 1, 1),
            ("Hilton", "lodging", 1, 0, 1, 1),
        ]
    );
    assert_eq!(
        (month.month.as_str(), month.vendors, month.reservations, month.cancelled, month.changed, month.changes),
        ("2026-10", 3, 6, 2, 3, 4)
    );
    let november = store.vendor_analytics("acme", "2026-11").await.expect("analytics");
    assert_eq!((november.reservations, november.changes), (1, 0));
    let globex = store.vendor_analytics("globex", "2026-10").await.expect("analytics");
    assert_eq!((globex.reservations, globex.cancelled, globex.changed, globex.changes), (1, 1, 1, 1));
}

async fn every_change_is_recorded_once_with_its_source(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    let [tap1, tap2, _, _, last] = <[Reservation; 5]>::try_from(october(&store).await).expect("five");
    let history = |r: &Reservation, scope: Scope| {
        let store = &store;
        let id = r.id;
        async move { store.reservation_changes(&scope, id).await.expect("history") }
    };

    let moves = history(&tap1, user("acme", "ana")).await.expect("ana sees her reservation");
    assert_eq!(moves.len(), 2);
    assert!(moves.iter().all(|c| c.source == ReservationSource::Agency));
    assert_eq!(moves[0].changed_at, Some(at("2026-09-15T08:00:00Z")));
    assert_eq!(moves[0].changes, json!({"starts_at": {"from": "2026-10-03T09:00:00Z", "to": "2026-10-03T10:30:00Z"}}));
    assert_eq!(moves[1].changes, json!({"starts_at": {"from": "2026-10-03T10:30:00Z", "to": "2026-10-03T11:00:00Z"}}));
    assert!(moves[0].id < moves[1].id && moves[0].detected_at <= moves[1].detected_at);

    let edit = history(&tap2, Scope::Tenant { tenant_id: "acme".into() }).await.expect("an admin sees it");
    assert_eq!(edit.len(), 1);
    assert_eq!(edit[0].source, ReservationSource::Manual);
    assert_eq!(edit[0].changes, json!({"city": {"from": "Lisbon", "to": "São Paulo"}}));

    let unchanged = history(&last, user("acme", "bea")).await.expect("bea sees hers");
    assert!(unchanged.is_empty(), "an update that changes nothing records nothing: {unchanged:?}");
    let scope = user("acme", "bea");
    let now = store.get_reservation(&scope, last.id).await.expect("get").expect("there");
    assert_eq!(now.updated_at, last.updated_at);

    // Someone else's reservation has no history to show, as if it did not exist.
    assert!(history(&tap1, user("acme", "bea")).await.is_none());
    assert!(history(&tap1, Scope::Tenant { tenant_id: "globex".into() }).await.is_none());
    assert!(history(&Reservation { id: Uuid::now_v7(), ..tap1.clone() }, Scope::Platform).await.is_none());

    // Deleting a reservation deletes its history with it.
    assert!(store.delete_reservation(&user("acme", "ana"), tap1.id).await.expect("delete"));
    let month = store.vendor_analytics("acme", "2026-10").await.expect("analytics");
    assert_eq!((month.reservations, month.changes), (5, 2));
}

async fn a_month_without_reservations_is_empty(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    october(&store).await;
    let month = store.vendor_analytics("acme", "2027-02").await.expect("analytics");
    assert!(month.is_empty());
    assert_eq!((month.vendors, month.rows.len(), month.changes), (0, 0, 0));
    assert!(store.vendor_analytics("acme", "2027-13").await.is_err(), "not a month");
}
