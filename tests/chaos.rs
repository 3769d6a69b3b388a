//! The chaos suite in CI: a short `longhaul chaos` run on every backend.
//! Each runs the real binaries for about 40 s (60 s on SQS) while jobs
//! (noop and report_build) arrive through the API and the processes are
//! killed with SIGKILL, stopped past their lease with SIGSTOP, and
//! redeployed with SIGTERM, while dependencies are cut away behind proxies
//! (on PostgreSQL the database, for seconds at a time; on SQS the SQS
//! endpoint for 30 s and S3 for seconds); then it drains and counts, with
//! triggers of its own, what was lost, committed twice, dead-lettered or
//! announced other than once, and which processes exited by themselves.
//! The command exits non-zero unless all of those are zero; these tests
//! also check the counts it prints, so a run that did no work cannot pass.
//!
//! A longer run, for release checks, is in the README (Guarantees).

mod support;

use std::time::Duration;

use longhaul_jobs::testing::{aws_endpoint_url, postgres_admin_url};
use serde_json::Value;
use support::Launcher;

/// Runs `longhaul chaos` with `args` and returns its JSON report.
async fn chaos(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut launcher = Launcher::new("sqlite://unused");
    let mut all = vec!["chaos"];
    if !args.contains(&"--duration-secs") {
        all.extend(["--duration-secs", "40"]);
    }
    all.extend_from_slice(args);
    let mut process = launcher.spawn(&all, env);
    let status = process.wait_for_exit(Duration::from_secs(600)).await.expect("the chaos run ends within 10 minutes");
    let output = process.log_tail(usize::MAX);
    let report = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .find(|value| value.get("passed").is_some())
        .unwrap_or_else(|| panic!("no report in the chaos run's output: {output}"));
    assert!(status.success(), "the chaos run failed: {report}\n{output}");
    report
}

/// What every backend must show: work done under every kind of fault, and
/// none of it lost, doubled or dead.
fn assert_survived(report: &Value) {
    let count = |name: &str| report[name].as_u64().unwrap_or_else(|| panic!("no `{name}` in {report}"));
    assert!(count("accepted") >= 100, "too little work to prove anything: {report}");
    assert_eq!(count("succeeded"), count("accepted"), "{report}");
    assert!(count("report_build") > 0, "no report_build job ran, so no domain writes were under test: {report}");
    assert_eq!(
        count("artifacts"),
        2 * count("report_build"),
        "each report_build leaves its two artifacts once: {report}"
    );
    for zero in ["lost", "doubled", "dead", "events_wrong", "missing", "unanswered", "crashed"] {
        assert_eq!(count(zero), 0, "{zero}: {report}");
    }
    for fault in ["kill", "stop", "term"] {
        assert!(report["faults"][fault].as_u64().unwrap_or(0) > 0, "no `{fault}` fault was injected: {report}");
    }
    assert_eq!(report["http"]["500"], Value::Null, "the API answered 500: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_postgres_loses_nothing_and_commits_nothing_twice() {
    let url = postgres_admin_url();
    let report = chaos(&["--backend", "postgres", "--database-url", &url], &[]).await;
    assert_survived(&report);
    // The database went away under the API and the workers, too: the API
    // said 503 (with Retry-After, which the harness honours), never 500,
    // and took jobs again once it was back.
    assert!(report["faults"]["db"].as_u64().unwrap_or(0) > 0, "no database outage: {report}");
    assert!(report["http"]["503"].as_u64().unwrap_or(0) > 0, "the outage was never answered with 503: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_sqlite_loses_nothing_and_commits_nothing_twice() {
    let report = chaos(&["--backend", "sqlite"], &[]).await;
    assert_survived(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_sqs_loses_nothing_and_commits_nothing_twice() {
    let url = postgres_admin_url();
    let endpoint = aws_endpoint_url();
    let env = support::local_aws_env(&endpoint);
    // moto answers a handful of receives a second: a gentler rate. 60 s, so
    // that a 30 s queue outage and an S3 outage both fit whichever comes
    // first.
    let report =
        chaos(&["--backend", "sqs", "--database-url", &url, "--rate", "10", "--duration-secs", "60"], &env).await;
    assert_survived(&report);
    // The SQS endpoint went away for 30 s (the API kept accepting; dispatch
    // and receives resumed after), and S3 for seconds while reports were
    // being written (they retried and succeeded, each artifact once).
    for outage in ["queue", "store"] {
        assert!(report["faults"][outage].as_u64().unwrap_or(0) > 0, "no `{outage}` outage: {report}");
    }
}
