//! The `EventStore` port, the same on both databases: idempotent batches,
//! an hour's pages, catalogues, the lake's bookkeeping and keys.

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    events::{admit, hour_of, BatchOutcome, Catalogue, EventBatch, EventIn, LakePartition, UnknownEvents},
    testing::{Backend, TestStore},
    travel::mail::Sealed,
};
use serde_json::json;

longhaul_jobs::on_every_backend!(
    a_keyed_batch_is_stored_once_and_another_batch_under_its_key_conflicts,
    an_hour_is_read_in_pages_of_one_tenant_in_id_order,
    a_tenant_keeps_its_own_catalogue,
    hours_in_the_lake_are_no_longer_unexported,
    a_tenants_lake_key_is_the_first_one_stored,
);

fn batch(tenant: &str, user: &str, received_at: DateTime<Utc>, names: &[&str], key: Option<&str>) -> EventBatch {
    let events: Vec<EventIn> = names
        .iter()
        .map(|name| serde_json::from_value(json!({"name": name, "occurred_at": received_at})).expect("an event"))
        .collect();
    EventBatch {
        tenant_id: tenant.into(),
        user_id: user.into(),
        idempotency_key: key.map(str::to_owned),
        request_hash: format!("{names:?}"),
        received_at,
        events: admit(&Catalogue::default_catalogue(), events, received_at).expect("admitted"),
    }
}

fn an_hour_ago() -> DateTime<Utc> {
    hour_of(Utc::now()) - chrono::Duration::hours(1)
}

async fn a_keyed_batch_is_stored_once_and_another_batch_under_its_key_conflicts(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    let at = an_hour_ago() + chrono::Duration::minutes(1);
    let first = batch("acme", "alice", at, &["search", "payment"], Some("k1"));
    assert_eq!(store.store_events(first.clone()).await.expect("store"), BatchOutcome::Stored { accepted: 2 });
    // The retry carries fresh ids (the API admits each request anew).
    let retry = batch("acme", "alice", at, &["search", "payment"], Some("k1"));
    assert_eq!(store.store_events(retry).await.expect("store"), BatchOutcome::Replayed { accepted: 2 });
    let other = batch("acme", "alice", at, &["search"], Some("k1"));
    assert_eq!(store.store_events(other).await.expect("store"), BatchOutcome::Conflict);
    // The key is the user's: another user's batch under it is their own.
    let bob = batch("acme", "bob", at, &["search"], Some("k1"));
    assert_eq!(store.store_events(bob).await.expect("store"), BatchOutcome::Stored { accepted: 1 });
    let unkeyed = batch("acme", "alice", at, &["search"], None);
    assert_eq!(store.store_events(unkeyed.clone()).await.expect("store"), BatchOutcome::Stored { accepted: 1 });
    let stored = store.events_page("acme", hour_of(at), None, 100).await.expect("page");
    assert_eq!(stored.len(), 4);
    // Keys are kept for a while, then forgotten: the batch could land again.
    assert_eq!(store.prune_event_batches(at).await.expect("prune"), 0);
    assert_eq!(store.prune_event_batches(Utc::now() + chrono::Duration::seconds(1)).await.expect("prune"), 2);
    let again = batch("acme", "alice", at, &["search", "payment"], Some("k1"));
    assert_eq!(store.store_events(again).await.expect("store"), BatchOutcome::Stored { accepted: 2 });
}

async fn an_hour_is_read_in_pages_of_one_tenant_in_id_order(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    let hour = an_hour_ago();
    let names = ["search"; 25];
    store
        .store_events(batch("acme", "alice", hour + chrono::Duration::minutes(59), &names, None))
        .await
        .expect("store");
    store.store_events(batch("globex", "gina", hour, &names[..3], None)).await.expect("store");
    store
        .store_events(batch("acme", "alice", hour + chrono::Duration::hours(1), &names[..2], None))
        .await
        .expect("store");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.events_page("acme", hour, after, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.into_iter().map(|event| event.id));
    }
    assert_eq!(seen.len(), 25, "the tenant's events of that hour, and no other");
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "in id order");
    let event = store.events_page("globex", hour, None, 1).await.expect("page").remove(0);
    assert_eq!(event.user_id, "gina");
    assert_eq!(event.name, "search");
    assert!(event.known);
    assert_eq!(hour_of(event.received_at), hour);
}

async fn a_tenant_keeps_its_own_catalogue(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    assert_eq!(store.event_catalogue("acme").await.expect("read"), None);
    let mut catalogue = Catalogue::default_catalogue();
    catalogue.unknown_events = UnknownEvents::Accept;
    catalogue.events.remove("payment");
    store.put_event_catalogue("acme", &catalogue, "admin").await.expect("put");
    assert_eq!(store.event_catalogue("acme").await.expect("read"), Some(catalogue.clone()));
    assert_eq!(store.event_catalogue("globex").await.expect("read"), None);
    catalogue.events.clear();
    store.put_event_catalogue("acme", &catalogue, "admin").await.expect("put again");
    assert_eq!(store.event_catalogue("acme").await.expect("read"), Some(catalogue));
}

async fn hours_in_the_lake_are_no_longer_unexported(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    let hour = an_hour_ago();
    for tenant in ["globex", "acme", "initech"] {
        store.store_events(batch(tenant, "u", hour, &["search"], None)).await.expect("store");
    }
    assert_eq!(store.unexported_tenants(hour).await.expect("read"), ["acme", "globex", "initech"]);
    let partition = LakePartition {
        tenant_id: "globex".into(),
        hour,
        files: 1,
        events: 1,
        bytes: 100,
        manifest: json!({"events": 1}),
        exported_at: Utc::now(),
    };
    store.record_lake_partition(&partition).await.expect("record");
    assert_eq!(store.unexported_tenants(hour).await.expect("read"), ["acme", "initech"]);
    let again = LakePartition { files: 2, events: 5, ..partition.clone() };
    store.record_lake_partition(&again).await.expect("record again");
    let read = store.lake_partition("globex", hour).await.expect("read").expect("recorded");
    assert_eq!((read.files, read.events, read.manifest), (2, 5, json!({"events": 1})));
    assert!(store.unexported_tenants(hour - chrono::Duration::hours(1)).await.expect("read").is_empty());
}

async fn a_tenants_lake_key_is_the_first_one_stored(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a store");
    let sealed =
        |n: u8| Sealed { key_id: format!("k{n}"), data_key: vec![n; 40], nonce: vec![n; 12], ciphertext: vec![n; 48] };
    assert_eq!(store.lake_key("acme").await.expect("read"), None);
    assert_eq!(store.insert_lake_key("acme", &sealed(1)).await.expect("insert"), sealed(1));
    assert_eq!(store.insert_lake_key("acme", &sealed(2)).await.expect("insert"), sealed(1), "the first one stays");
    assert_eq!(store.lake_key("acme").await.expect("read"), Some(sealed(1)));
    assert_eq!(store.insert_lake_key("globex", &sealed(3)).await.expect("insert"), sealed(3));
}
