//! What the end-to-end tests share: the real `longhaul` binary run as child
//! processes, a fresh database per test, and a raw view of that database that
//! counts commits.
//!
//! Every child process is owned by a guard that SIGKILLs and reaps it when the
//! test ends, passes or panics, and every wait is bounded, so a broken binary
//! fails a test instead of hanging it.

// Each test file uses a different part of this module.
#![allow(dead_code)]

pub mod hostile_imap;

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    future::Future,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use longhaul_jobs::{
    model::{NewJob, Scope},
    store::JobFilter,
    testing::{Backend, TestStore},
    Job, JobKind,
};
use nix::sys::signal::{self, Signal};
use serde_json::json;
use sqlx::{postgres::PgPoolOptions, sqlite::SqliteConnectOptions, sqlite::SqlitePoolOptions, PgPool, SqlitePool};
use uuid::Uuid;

/// The binary under test, built by cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_longhaul");

/// How often waits poll the database.
const POLL: Duration = Duration::from_millis(50);

/// The variables that point the AWS SDK of a child process at the local
/// endpoint (`moto_server`) the test command started.
pub fn local_aws_env(endpoint: &str) -> [(&'static str, &str); 4] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

/// A `noop` job that sleeps `sleep_ms` and then succeeds.
pub fn noop_job(sleep_ms: u64, max_attempts: i32) -> NewJob {
    let mut job = NewJob::new("e2e-tenant", "e2e-user", JobKind::NOOP, json!({ "sleep_ms": sleep_ms }));
    job.max_attempts = max_attempts;
    job
}

/// Polls `probe` until it returns `Ok`, for at most `timeout`. `Err` carries a
/// description of the current state, shown if the wait times out.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last state: {state}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

// ---------------------------------------------------------------------------
// The database

/// A fresh, migrated database with a commit counter installed, seen both
/// through the Store API and through raw SQL.
pub struct TestDb {
    pub store: TestStore,
    pub raw: RawDb,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let store = TestStore::new(backend).await.expect("create a test database");
        let raw = RawDb::connect(backend, &store.url).await;
        raw.install_commit_counter().await;
        TestDb { store, raw }
    }

    pub fn url(&self) -> &str {
        &self.store.url
    }

    pub async fn insert(&self, jobs: &[NewJob]) {
        for chunk in jobs.chunks(250) {
            let inserted = self.store.insert_jobs(chunk).await.expect("insert jobs");
            assert_eq!(inserted, chunk.len() as u64, "insert_jobs inserted fewer jobs than given");
        }
    }

    pub async fn job(&self, id: Uuid) -> Job {
        self.store
            .get_job(&Scope::Platform, id)
            .await
            .expect("read a job")
            .unwrap_or_else(|| panic!("job {id} is missing"))
    }

    pub async fn jobs(&self, ids: &[Uuid]) -> Vec<Job> {
        let mut jobs = Vec::with_capacity(ids.len());
        for &id in ids {
            jobs.push(self.job(id).await);
        }
        jobs
    }

    /// Every job in the database, through the Store's paginated list.
    pub async fn all_jobs(&self) -> Vec<Job> {
        let mut all: Vec<Job> = Vec::new();
        let mut seen = HashSet::new();
        // Bounded, in case a broken cursor never returns an empty page.
        for _ in 0..10_000 {
            let filter = JobFilter { before: all.last().map(|job| job.id), limit: 500, ..JobFilter::default() };
            let page = self.store.list_jobs(&Scope::Platform, &filter).await.expect("list jobs");
            if page.is_empty() {
                return all;
            }
            for job in page {
                assert!(seen.insert(job.id), "job {} was listed twice: the list cursor is broken", job.id);
                all.push(job);
            }
        }
        panic!("listing the jobs never reached an empty page");
    }

    /// Waits until `condition` holds for the jobs `ids`, and returns them.
    pub async fn wait_for_jobs(
        &self,
        ids: &[Uuid],
        timeout: Duration,
        what: &str,
        condition: impl Fn(&[Job]) -> bool,
    ) -> Vec<Job> {
        eventually(timeout, what, || async {
            let jobs = self.jobs(ids).await;
            if condition(&jobs) {
                Ok(jobs)
            } else {
                Err(describe(&jobs))
            }
        })
        .await
    }
}

/// `id: status (attempt n)` for each job, for failure messages.
pub fn describe(jobs: &[Job]) -> String {
    jobs.iter()
        .map(|job| format!("{}: {} (attempts {}, error {:?})", job.id, job.status, job.attempts, job.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The commits the trigger saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commits {
    /// Transitions of a job into `succeeded`, one row each.
    pub completions: i64,
    /// How many distinct jobs those rows are about.
    pub distinct_jobs: i64,
    /// The attempt number of each completion.
    pub attempts: Vec<i64>,
    /// Updates of a job that had already succeeded. A second commit of the
    /// same job would show up here even though it does not change the status.
    pub rewrites_of_succeeded: i64,
}

/// Raw SQL on the test database, for what the Store API does not (and should
/// not) expose: the commit counter.
pub enum RawDb {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

const SQLITE_COMMIT_COUNTER: &str = r#"
CREATE TABLE test_completions (job_id TEXT NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE test_rewrites_of_succeeded (job_id TEXT NOT NULL, new_status TEXT NOT NULL);

CREATE TRIGGER test_count_completions AFTER UPDATE ON jobs
WHEN NEW.status = 'succeeded' AND OLD.status <> 'succeeded'
BEGIN
    INSERT INTO test_completions (job_id, attempts) VALUES (NEW.id, NEW.attempts);
END;

CREATE TRIGGER test_count_rewrites_of_succeeded AFTER UPDATE ON jobs
WHEN OLD.status = 'succeeded'
BEGIN
    INSERT INTO test_rewrites_of_succeeded (job_id, new_status) VALUES (OLD.id, NEW.status);
END;
"#;

const POSTGRES_COMMIT_COUNTER: &str = r#"
CREATE TABLE test_completions (job_id TEXT NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE test_rewrites_of_succeeded (job_id TEXT NOT NULL, new_status TEXT NOT NULL);

CREATE FUNCTION test_count_completion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_completions (job_id, attempts) VALUES (NEW.id::text, NEW.attempts);
    RETURN NULL;
END
$$;

CREATE FUNCTION test_count_rewrite_of_succeeded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_rewrites_of_succeeded (job_id, new_status) VALUES (OLD.id::text, NEW.status::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER test_count_completions AFTER UPDATE ON jobs FOR EACH ROW
WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded')
EXECUTE FUNCTION test_count_completion();

CREATE TRIGGER test_count_rewrites_of_succeeded AFTER UPDATE ON jobs FOR EACH ROW
WHEN (OLD.status = 'succeeded')
EXECUTE FUNCTION test_count_rewrite_of_succeeded();
"#;

impl RawDb {
    pub async fn connect(backend: Backend, url: &str) -> RawDb {
        match backend {
            Backend::Postgres => RawDb::Postgres(
                PgPoolOptions::new().max_connections(2).connect(url).await.expect("connect to PostgreSQL"),
            ),
            Backend::Sqlite => {
                let options =
                    SqliteConnectOptions::from_str(url).expect("a SQLite URL").busy_timeout(Duration::from_secs(30));
                RawDb::Sqlite(
                    SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("open SQLite"),
                )
            }
        }
    }

    /// Installs triggers that record every commit of a success: the tests'
    /// independent witness of exactly-once.
    pub async fn install_commit_counter(&self) {
        match self {
            RawDb::Postgres(pool) => sqlx::raw_sql(POSTGRES_COMMIT_COUNTER).execute(pool).await.map(drop),
            RawDb::Sqlite(pool) => sqlx::raw_sql(SQLITE_COMMIT_COUNTER).execute(pool).await.map(drop),
        }
        .expect("install the commit counter triggers");
    }

    pub async fn commits(&self) -> Commits {
        const TOTALS: &str = "SELECT COUNT(*), COUNT(DISTINCT job_id) FROM test_completions";
        const ATTEMPTS: &str = "SELECT CAST(attempts AS BIGINT) FROM test_completions ORDER BY attempts";
        const REWRITES: &str = "SELECT COUNT(*) FROM test_rewrites_of_succeeded";
        let result: Result<_, sqlx::Error> = async {
            Ok(match self {
                RawDb::Postgres(pool) => {
                    let (completions, distinct_jobs) = sqlx::query_as::<_, (i64, i64)>(TOTALS).fetch_one(pool).await?;
                    let attempts = sqlx::query_scalar::<_, i64>(ATTEMPTS).fetch_all(pool).await?;
                    let rewrites_of_succeeded = sqlx::query_scalar::<_, i64>(REWRITES).fetch_one(pool).await?;
                    Commits { completions, distinct_jobs, attempts, rewrites_of_succeeded }
                }
                RawDb::Sqlite(pool) => {
                    let (completions, distinct_jobs) = sqlx::query_as::<_, (i64, i64)>(TOTALS).fetch_one(pool).await?;
                    let attempts = sqlx::query_scalar::<_, i64>(ATTEMPTS).fetch_all(pool).await?;
                    let rewrites_of_succeeded = sqlx::query_scalar::<_, i64>(REWRITES).fetch_one(pool).await?;
                    Commits { completions, distinct_jobs, attempts, rewrites_of_succeeded }
                }
            })
        }
        .await;
        result.expect("read the commit counter")
    }

    /// How many jobs are in each status.
    pub async fn status_counts(&self) -> BTreeMap<String, i64> {
        const QUERY: &str = "SELECT CAST(status AS TEXT), COUNT(*) FROM jobs GROUP BY status";
        let rows = match self {
            RawDb::Postgres(pool) => sqlx::query_as::<_, (String, i64)>(QUERY).fetch_all(pool).await,
            RawDb::Sqlite(pool) => sqlx::query_as::<_, (String, i64)>(QUERY).fetch_all(pool).await,
        };
        rows.expect("count jobs by status").into_iter().collect()
    }
}

/// Jobs still `queued` or `running`, from a map of [`RawDb::status_counts`].
pub fn unfinished(counts: &BTreeMap<String, i64>) -> i64 {
    counts.get("queued").copied().unwrap_or(0) + counts.get("running").copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Processes

/// How a worker process is configured. `None` leaves the binary's default.
#[derive(Debug, Clone, Default)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub lease_secs: Option<u64>,
    pub heartbeat_secs: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub reap_interval_secs: Option<u64>,
    /// `LONGHAUL_TENANT_SHARE`; unset, the binary's default (half a lane).
    /// The tests whose jobs all belong to one tenant and that count jobs in
    /// flight lift it, as a single-tenant install would.
    pub tenant_share: Option<&'static str>,
}

/// Starts `longhaul` processes against one database, each logging to a file
/// of its own. If the test fails, the end of every log is printed.
pub struct Launcher {
    database_url: String,
    dir: tempfile::TempDir,
    logs: Vec<PathBuf>,
}

impl Launcher {
    pub fn new(database_url: &str) -> Launcher {
        Launcher {
            database_url: database_url.to_owned(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            logs: Vec::new(),
        }
    }

    /// A `longhaul` command with a clean environment: no `LONGHAUL_*` variable
    /// of the caller leaks in, and the data dir is private to the test.
    pub fn command(&mut self, name: &str) -> (Command, PathBuf) {
        let data_dir = self.dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create the data dir");
        let log_path = self.dir.path().join(format!("{}-{name}.log", self.logs.len() + 1));
        let log = File::create(&log_path).expect("create a log file");
        self.logs.push(log_path.clone());

        let mut command = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LONGHAUL_") {
                command.env_remove(key);
            }
        }
        command
            .env("LONGHAUL_DATABASE_URL", &self.database_url)
            .env("LONGHAUL_DATA_DIR", &data_dir)
            .env("LONGHAUL_LOG", "info")
            .env("LONGHAUL_LOG_FORMAT", "text")
            // Workers' probes on a port of their own, so that tests can run
            // many workers at once; a test that scrapes one sets its own.
            .env("LONGHAUL_WORKER_LISTEN", "127.0.0.1:0")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a file handle"))
            .stderr(log);
        // SAFETY: the closure runs in the child between fork and exec, and
        // only makes the prctl system call, which is async-signal-safe.
        unsafe {
            // If the test process dies without running its guards (killed by
            // a harness timeout), take its children with it.
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        (command, log_path)
    }

    /// Starts `longhaul worker` on the default lane.
    pub fn spawn_worker(&mut self, settings: &WorkerSettings) -> Process {
        let name = format!("worker-{}", self.logs.len() + 1);
        let (mut command, log) = self.command(&name);
        command
            .args(["worker", "--lanes", "default", "--concurrency"])
            .arg(settings.concurrency.to_string())
            .env("LONGHAUL_WORKER_ID", &name)
            // These workers serve the default lane only, and the tests count
            // every job: no reservation sweeps for a lane nobody here runs.
            .env("LONGHAUL_SWEEP_INTERVAL_SECS", "0");
        let variables = [
            ("LONGHAUL_LEASE_SECS", settings.lease_secs),
            ("LONGHAUL_HEARTBEAT_SECS", settings.heartbeat_secs),
            ("LONGHAUL_POLL_INTERVAL_MS", settings.poll_interval_ms),
            ("LONGHAUL_SHUTDOWN_GRACE_SECS", settings.shutdown_grace_secs),
            ("LONGHAUL_REAP_INTERVAL_SECS", settings.reap_interval_secs),
        ];
        for (variable, value) in variables {
            if let Some(value) = value {
                command.env(variable, value.to_string());
            }
        }
        if let Some(share) = settings.tenant_share {
            command.env("LONGHAUL_TENANT_SHARE", share);
        }
        Process::spawn(name, command, log)
    }

    /// Starts `longhaul <args>`, with extra variables, and leaves it running.
    pub fn spawn(&mut self, args: &[&str], env: &[(&str, &str)]) -> Process {
        let name = args.first().copied().unwrap_or("longhaul");
        let (mut command, log) = self.command(name);
        command.args(args).envs(env.iter().copied());
        Process::spawn(format!("longhaul {}", args.join(" ")), command, log)
    }

    /// The data dir every command of this launcher shares.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `longhaul token` for `user` of `tenant` with `role`, signed with the
    /// development key of this launcher's data dir: the token.
    pub async fn token(&mut self, tenant: &str, user: &str, role: &str) -> String {
        let data_dir = self.data_dir();
        let data_dir = data_dir.to_str().expect("a UTF-8 path").to_owned();
        let args = ["token", "--data-dir", &data_dir, "--tenant", tenant, "--user", user, "--role", role];
        let (status, output) = self.run(&args, Duration::from_secs(30)).await;
        assert!(status.success(), "longhaul token failed:\n{output}");
        output.lines().last().expect("a token").trim().to_owned()
    }

    /// The development signing key `longhaul token` made in the data dir.
    pub fn signing_key_file(&self) -> String {
        self.data_dir().join("dev-signing.key").to_str().expect("a UTF-8 path").to_owned()
    }

    /// Runs `longhaul <args>` to its end, for at most `timeout`.
    pub async fn run(&mut self, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
        let (mut command, log) = self.command(args.first().copied().unwrap_or("longhaul"));
        command.args(args);
        let mut process = Process::spawn(format!("longhaul {}", args.join(" ")), command, log.clone());
        let status = process
            .wait_for_exit(timeout)
            .await
            .unwrap_or_else(|| panic!("`longhaul {}` did not exit within {timeout:?}", args.join(" ")));
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for log in &self.logs {
            eprintln!("\n---- last lines of {} ----", log.display());
            eprintln!("{}", tail(log, 30));
        }
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process that is killed and reaped when dropped, so that no test
/// leaves a worker running, whether it passes or panics.
pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Process {
    fn spawn(name: String, mut command: Command, log: PathBuf) -> Process {
        let child = command.spawn().unwrap_or_else(|err| panic!("cannot start {BIN} for {name}: {err}"));
        Process { name, child, log, exited: None }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// The process id (of this very process: a restart would be another).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (SIGTERM, SIGINT) without waiting.
    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        signal::kill(pid, signal).unwrap_or_else(|err| panic!("cannot send {signal} to {}: {err}", self.name));
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // An error means the process is already gone; wait() reaps it either way.
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }

    /// The exit status, if the process has exited (reaping it).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("poll a child process");
        }
        self.exited
    }

    /// Waits for the process to exit by itself, for at most `timeout`.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// A network endpoint that can disappear

/// A TCP proxy on a fixed local port, in front of a real server, that can be
/// stopped (new connections are refused, open ones are cut) and started again
/// on the same port: an outage of the server, as its clients see it, with
/// the server's state intact.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a proxy port");
        let port = listener.local_addr().expect("the proxy's address").port();
        let mut proxy = TcpProxy { port, target: target.to_owned(), running: None };
        proxy.serve(listener);
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.running = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // Dropping the set aborts every open connection.
        }));
    }

    /// Refuses connections and cuts the open ones.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            let _ = running.await;
        }
    }

    /// Serves again, on the same port.
    pub async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind the proxy port");
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Waits until `GET url` answers 2xx, or fails with the process's log if it
/// exits or a minute passes.
pub async fn wait_ready(url: &str, process: &mut Process) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(url).send().await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(process.try_exit_status().is_none(), "{} exited early:\n{}", process.name, process.log_tail(30));
        assert!(tokio::time::Instant::now() < deadline, "{url} never answered:\n{}", process.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
