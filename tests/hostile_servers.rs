//! Servers that misbehave on purpose, against the real binary: a `longhaul
//! worker` on PostgreSQL polls inboxes whose IMAP servers are hostile
//! (`support::hostile_imap`), connected and polled through the API as a
//! user would. Each poll fails alone, with a reason its owner can read, in
//! bounded time; the worker process stays up (the same process, answering
//! `/healthz`) in bounded memory, and meanwhile polls an honest inbox: the
//! test Dovecot that `scripts/test.sh` starts, or, without one, runs a
//! `noop` job.

mod support;

use std::time::{Duration, Instant};

use longhaul_jobs::{testing::Backend, travel::mail::LocalKeys};
use serde_json::{json, Value};
use support::{
    eventually, free_port,
    hostile_imap::{HostileImap, Misbehaviour},
    wait_ready, Launcher, TestDb,
};
use uuid::Uuid;

/// How long a hostile server may keep a poll: the worker's timeouts here
/// are 2 s of silence and 6 s a command.
const READ_TIMEOUT_SECS: &str = "2";
const COMMAND_TIMEOUT_SECS: &str = "6";
/// What the password of every hostile account is; no error may show it.
const PASSWORD: &str = "hunter2-hostile";
/// The worker's memory may not grow past this, whatever the servers send
/// (it idles at well under half of it).
const MAX_WORKER_HWM_KIB: u64 = 300 * 1024;

/// One hostile server, and what the poll of it must end with.
struct Case {
    how: Misbehaviour,
    /// In the job's error.
    reason: &'static str,
    /// Dead at its first attempt; otherwise failed to be tried again.
    permanent: bool,
}

const CASES: [Case; 7] = [
    Case {
        how: Misbehaviour::DeepBodyStructure(100_000),
        reason: "sent a reply nested deeper than 128 levels; giving up on this server",
        permanent: true,
    },
    // Short enough for the line's cap: only the depth's stops it.
    Case {
        how: Misbehaviour::DeepBodyStructure(20_000),
        reason: "sent a reply nested deeper than 128 levels; giving up on this server",
        permanent: true,
    },
    Case {
        how: Misbehaviour::EndlessFetches,
        reason: "sent more than 101 FETCH responses to a UID FETCH of 1 message; giving up on this server",
        permanent: true,
    },
    Case {
        how: Misbehaviour::EndlessUntagged,
        reason: "sent more than 10000 replies to one command; giving up on this server",
        permanent: true,
    },
    Case {
        how: Misbehaviour::HugeLiteral(1 << 30),
        reason: "announced a literal of more than 8 MiB; giving up on this server",
        permanent: true,
    },
    Case { how: Misbehaviour::Stall, reason: "went silent for 2 s while we waited for its answer", permanent: false },
    Case { how: Misbehaviour::Dribble, reason: "took more than 6 s to answer one command", permanent: false },
];

/// The test Dovecot (`scripts/test.sh`), if there is one: any user name
/// logs in with its password.
fn dovecot() -> Option<(String, u16, String)> {
    let address = std::env::var("LONGHAUL_TEST_IMAP_ADDR").ok()?;
    let (host, port) = address.rsplit_once(':')?;
    let password = std::env::var("LONGHAUL_TEST_IMAP_PASSWORD").unwrap_or_else(|_| "longhaul-test".into());
    Some((host.to_owned(), port.parse().ok()?, password))
}

/// Delivers `message` to `user`'s inbox on the test Dovecot, as a mail
/// server would (IMAP APPEND).
async fn deliver(user: &str, message: &[u8]) {
    let (host, port, password) = dovecot().expect("the test Dovecot");
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.expect("connect to Dovecot");
    let mut client = async_imap::Client::new(stream);
    client.read_response().await.expect("a greeting").expect("a greeting");
    let mut session = client.login(user, password).await.map_err(|(err, _)| err).expect("login");
    session.append("INBOX", None, None, message).await.expect("APPEND");
    session.logout().await.expect("logout");
}

fn booking() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/email/jsonld-flight.eml");
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The API as one user sees it.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_else(|err| panic!("POST {path}: {err}"));
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// Connects an inbox; returns its id.
    async fn connect(&self, port: u16, username: &str, password: &str) -> Uuid {
        let account = self
            .post(
                "/v1/mail-accounts",
                json!({
                    "imap_host": "127.0.0.1", "imap_port": port, "tls": "none",
                    "username": username, "password": password,
                    "allowed_senders": ["atlantica-airways.example"],
                }),
            )
            .await;
        account["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("an account id: {account}"))
    }

    /// Submits a poll of `account` now; returns the job's id.
    async fn poll(&self, account: Uuid) -> String {
        let job = self.post(&format!("/v1/mail-accounts/{account}/poll"), json!({})).await;
        job["id"].as_str().unwrap_or_else(|| panic!("a job id: {job}")).to_owned()
    }

    async fn job(&self, id: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        response.json().await.map_err(|err| err.to_string())
    }

    async fn wait_for_job(&self, id: &str, timeout: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(timeout, what, || async {
            let job = self.job(id).await?;
            if done(&job) {
                Ok(job)
            } else {
                Err(job.to_string())
            }
        })
        .await
    }
}

/// The peak resident memory of process `pid`, in KiB.
fn high_water_mark_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the worker's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in:\n{status}"))
}

async fn healthy(url: &str) {
    let response = reqwest::get(format!("{url}/healthz")).await.expect("the worker answers /healthz");
    assert!(response.status().is_success(), "{url}/healthz answered {}", response.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_imap_servers_fail_only_their_own_polls() {
    let mut servers = Vec::new();
    for case in &CASES {
        servers.push(HostileImap::start(case.how).await);
    }
    let db = TestDb::new(Backend::Postgres).await;
    let mut launcher = Launcher::new(db.url());
    let user_token = launcher.token("acme", "traveler", "user").await;
    let admin_token = launcher.token("acme", "ops", "admin").await;
    let keys = LocalKeys::generate("e2e").to_string();
    let key_file = launcher.signing_key_file();
    let api_listen = format!("127.0.0.1:{}", free_port());
    let worker_listen = format!("127.0.0.1:{}", free_port());
    let common = [("LONGHAUL_SECRET_KEYS", keys.as_str()), ("LONGHAUL_SWEEP_INTERVAL_SECS", "0")];

    let mut api_env = common.to_vec();
    api_env.push(("LONGHAUL_DEV_SIGNING_KEY_FILE", &key_file));
    let mut api_process = launcher.spawn(&["api", "--listen", &api_listen], &api_env);
    let url = format!("http://{api_listen}");
    wait_ready(&format!("{url}/readyz"), &mut api_process).await;
    let api = Api { http: reqwest::Client::new(), url: url.clone(), token: user_token };
    let admin = Api { http: api.http.clone(), url: url.clone(), token: admin_token };

    let mut hostile = Vec::new();
    for server in &servers {
        hostile.push(api.connect(server.address.port(), "victim", PASSWORD).await);
    }
    let honest = match dovecot() {
        Some((_, port, password)) => {
            let mailbox = format!("u{}", Uuid::now_v7().simple());
            deliver(&mailbox, &booking()).await;
            Some(api.connect(port, &mailbox, &password).await)
        }
        None => {
            eprintln!("LONGHAUL_TEST_IMAP_ADDR is unset: the honest job is a noop instead of a Dovecot poll");
            None
        }
    };
    // The scheduler would poll new inboxes at once; this test submits the
    // polls itself, one job per inbox.
    let later: Vec<(Uuid, Duration)> =
        hostile.iter().chain(honest.iter()).map(|id| (*id, Duration::from_secs(3600))).collect();
    db.store.schedule_mail_polls(&later).await.expect("put the scheduled polls off");

    let mut worker_env = common.to_vec();
    worker_env.extend([
        ("LONGHAUL_MAIL_ALLOW_PRIVATE_HOSTS", "true"),
        ("LONGHAUL_MAIL_READ_TIMEOUT_SECS", READ_TIMEOUT_SECS),
        ("LONGHAUL_MAIL_COMMAND_TIMEOUT_SECS", COMMAND_TIMEOUT_SECS),
        ("LONGHAUL_MAIL_POLL_SECS", "3600"),
        ("LONGHAUL_WORKER_LISTEN", &worker_listen),
    ]);
    let mut worker = launcher.spawn(&["worker", "--lanes", "email,default", "--concurrency", "8"], &worker_env);
    let worker_url = format!("http://{worker_listen}");
    wait_ready(&format!("{worker_url}/readyz"), &mut worker).await;
    let pid = worker.id();

    let started = Instant::now();
    let mut jobs = Vec::new();
    for account in &hostile {
        jobs.push(api.poll(*account).await);
    }

    // Meanwhile, with the slowest hostile poll under way, an honest job
    // runs to its end on the same worker.
    let dribbling = &jobs[CASES.iter().position(|c| c.how == Misbehaviour::Dribble).expect("a dribble case")];
    api.wait_for_job(dribbling, Duration::from_secs(30), "the dribbled poll to start", |job| {
        job["status"] == "running"
    })
    .await;
    let (honest_job, owner) = match honest {
        Some(account) => (api.poll(account).await, &api),
        None => {
            let job = admin.post("/v1/jobs", json!({"kind": "noop", "payload": {"sleep_ms": 100}})).await;
            (job["id"].as_str().expect("a job id").to_owned(), &admin)
        }
    };
    let done = owner
        .wait_for_job(&honest_job, Duration::from_secs(60), "the honest job to end", |job| {
            matches!(job["status"].as_str(), Some("succeeded" | "dead" | "failed"))
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    if honest.is_some() {
        assert_eq!(done["result"]["reservations_found"], 1, "the booking was read: {done}");
    }
    let still = api.job(dribbling).await.expect("the dribbled poll");
    assert!(
        still["status"] == "running" && still["error"].is_null(),
        "the honest job ended while the hostile poll still ran: {still}"
    );
    healthy(&worker_url).await;

    // Each hostile poll fails alone, with its reason, in bounded time.
    for (case, id) in CASES.iter().zip(&jobs) {
        let job = api
            .wait_for_job(id, Duration::from_secs(60), &format!("the poll of {:?} to fail", case.how), |job| {
                job["error"].as_str().is_some_and(|error| error.contains(case.reason))
                    && (!case.permanent || job["status"] == "dead")
            })
            .await;
        let took = started.elapsed();
        println!("{:?}: {} after {took:.1?}: {}", case.how, job["status"], job["error"]);
        assert!(took < Duration::from_secs(45), "{:?} took {took:?}", case.how);
        if case.permanent {
            assert_eq!(job["attempts"], 1, "a refusal is not retried: {job}");
        }
        let error = job["error"].as_str().unwrap_or_default();
        assert!(!error.contains(PASSWORD), "the password never shows: {error}");
        assert!(error.len() < 400, "a reason a person reads, not a dump: {error}");
    }

    // The same worker process is still up, and its memory stayed bounded.
    assert!(worker.try_exit_status().is_none(), "the worker exited:\n{}", worker.log_tail(30));
    assert_eq!(worker.id(), pid);
    healthy(&worker_url).await;
    let hwm = high_water_mark_kib(pid);
    println!("worker peak memory (VmHWM): {} MiB", hwm / 1024);
    assert!(hwm < MAX_WORKER_HWM_KIB, "the worker peaked at {} MiB", hwm / 1024);
    let log = worker.log_tail(usize::MAX);
    assert!(!log.contains("panicked") && !log.contains(PASSWORD), "{}", worker.log_tail(30));

    // And it goes on working.
    if let Some(account) = honest {
        let again = api.poll(account).await;
        let done = api
            .wait_for_job(&again, Duration::from_secs(60), "another honest poll", |job| job["status"] == "succeeded")
            .await;
        assert_eq!(done["result"]["new_messages"], 0, "{done}");
    }
}
