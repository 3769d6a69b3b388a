//! A kind that exists only in this test, to prove what ARCHITECTURE.md
//! promises: adding a kind is its own module and one registration line.
//! Nothing in the crates knows `shout`; the registration below is all it
//! takes for the kind to be parsed, admitted, routed to its lane and run
//! with its payload already typed, on both backends.

use std::time::Duration;

use async_trait::async_trait;
use longhaul_jobs::{
    kind::{Kind, PayloadError, Submitter},
    store::InsertOutcome,
    testing::{Backend, TestStore},
    JobKind, Lane, NewJob, Scope, Status,
};
use longhaul_workers::{Handler, JobContext, JobResult, Registry, Runtime, WorkerConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// `shout`: upper-cases its words.
struct Shout;

impl Kind for Shout {
    const NAME: &'static str = "shout";
    const LANE: Lane = Lane::Reports;
    const MAX_ATTEMPTS: i32 = 2;
    type Payload = ShoutPayload;

    fn check(payload: &ShoutPayload) -> Result<(), PayloadError> {
        if payload.words.trim().is_empty() {
            return Err(PayloadError::new("payload.words", "must not be blank"));
        }
        Ok(())
    }

    fn complete(payload: &mut ShoutPayload, submitter: &Submitter) {
        if let Some(name) = &submitter.name {
            payload.words = format!("{}, {name}", payload.words);
        }
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ShoutPayload {
    words: String,
}

// The one registration line.
longhaul_jobs::inventory::submit!(JobKind::of::<Shout>());

struct Shouter;

#[async_trait]
impl Handler for Shouter {
    type Kind = Shout;

    async fn run(&self, _ctx: &JobContext, payload: ShoutPayload) -> JobResult {
        Ok(Some(json!(payload.words.to_uppercase())))
    }
}

#[tokio::test]
async fn a_kind_registered_in_one_line_is_known_by_name_with_its_lane_and_rules() {
    let kind: JobKind = "shout".parse().expect("registered");
    assert_eq!(kind, JobKind::of::<Shout>());
    assert_eq!((kind.lane(), kind.default_max_attempts(), kind.admin_only()), (Lane::Reports, 2, false));
    assert!(JobKind::all().contains(&kind));

    let submitter = Submitter { name: Some("Ana".into()), ..Submitter::default() };
    let admitted = kind.admit(&json!({"words": "hello"}), &submitter).expect("a valid payload");
    assert_eq!(admitted.payload, json!({"words": "hello, Ana"}));
    let refused = kind.admit(&json!({"words": "  "}), &submitter).expect_err("blank words");
    assert_eq!(refused.field, "payload.words");
    let refused = kind.admit(&json!({"words": 3}), &submitter).expect_err("not text");
    assert_eq!(refused.field, "payload.words");
}

async fn runs_typed(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)");
    let kind = JobKind::of::<Shout>();
    let good = kind.admit(&json!({"words": "hello"}), &Submitter::default()).expect("valid").payload;
    let mut ids = Vec::new();
    // The second was stored behind the API's back: the worker fails it
    // for good, with the reason, and goes on.
    for payload in [good, json!({"words": ""})] {
        match store.insert_job(NewJob::new("acme", "alice", kind, payload)).await.expect("insert") {
            InsertOutcome::Created(job) => ids.push(job.id),
            other => panic!("expected a new job, got {other:?}"),
        }
    }
    let mut registry = Registry::with_defaults();
    registry.register(Shouter);
    let config = WorkerConfig {
        lanes: vec![(Lane::Reports, 2)],
        poll_interval: Duration::from_millis(50),
        scheduler: false,
        ..WorkerConfig::default()
    };
    let runtime = Runtime::start(store.clone(), registry, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut finished = Vec::new();
    for id in ids {
        loop {
            let job = store.get_job(&Scope::Platform, id).await.expect("get").expect("job exists");
            if job.status.is_final() {
                finished.push(job);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the job never finished: {job:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    runtime.shutdown().await;
    assert_eq!((finished[0].status, finished[0].result.clone()), (Status::Succeeded, Some(json!("HELLO"))));
    assert_eq!(finished[1].status, Status::Dead);
    let reason = finished[1].error.clone().unwrap_or_default();
    assert!(reason.contains("invalid shout payload") && reason.contains("payload.words"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_registered_in_one_line_runs_with_its_payload_typed_on_sqlite() {
    runs_typed(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_registered_in_one_line_runs_with_its_payload_typed_on_postgres() {
    runs_typed(Backend::Postgres).await;
}
