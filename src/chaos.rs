//! `longhaul chaos`: the standing proof that faults lose nothing and commit
//! nothing twice.
//!
//! It runs the real binaries against a fresh database (`api` and several
//! `worker`s, or one `up` on SQLite), submits a mix of `noop` and
//! `report_build` jobs through the API for a set time while it hits the
//! processes with SIGKILL, SIGSTOP for longer than the lease (then
//! SIGCONT), and SIGTERM followed by a restart (a rolling deploy), and, on
//! a timeline of their own, takes dependencies away behind TCP proxies: the
//! database (postgres), the SQS endpoint and S3 (sqs). Then it
//! lets everything drain and reports, from the database: jobs lost (accepted
//! but never succeeded), jobs committed twice, extra attempts, jobs the chaos
//! dead-lettered, and `job.succeeded` events that are not exactly one per job.
//!
//! The counts come from triggers the harness installs in the database before
//! any job arrives (`chaos_*` tables), so they do not trust the code under
//! test. It exits non-zero unless nothing was lost, doubled, dead-lettered or
//! announced twice, the API never answered 500, and no process exited
//! without a fault telling it to (such a process is started again, so the
//! run goes on, and named in the report).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::ValueEnum;
use longhaul_api::auth;
use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, sqlite::SqlitePoolOptions, Row};
use uuid::Uuid;

use crate::{cli::ChaosArgs, serve::dev_key_path};

/// The tenant every chaos job belongs to.
const TENANT: &str = "chaos";

/// Which deployment the chaos runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChaosBackend {
    /// `api` and `--workers` workers on PostgreSQL, the embedded queue.
    Postgres,
    /// One `up` process on SQLite, restarted by the faults.
    Sqlite,
    /// `api` and workers on PostgreSQL, the queue on SQS (`AWS_ENDPOINT_URL`).
    Sqs,
}

/// A fault the harness injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Fault {
    /// SIGKILL, then a fresh process.
    Kill,
    /// SIGSTOP for longer than the lease, then SIGCONT.
    Stop,
    /// SIGTERM (a rolling deploy): the process drains and exits; a fresh one starts.
    Term,
    /// The database out of reach for 3–8 s, as in a restart or a failover:
    /// every connection is cut and new ones are refused (postgres only).
    Db,
    /// The SQS endpoint out of reach for `--queue-outage-secs` (sqs only):
    /// the API keeps accepting jobs, dispatch and receives resume after.
    Queue,
    /// The object store (S3) out of reach for 3–8 s while reports are built
    /// (sqs only, whose run keeps its objects on S3): the jobs retry.
    Store,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Term => "term",
            Fault::Db => "db",
            Fault::Queue => "queue",
            Fault::Store => "store",
        }
    }

    /// A dependency taken away (on a timeline of its own), not a process hit.
    fn is_outage(self) -> bool {
        matches!(self, Fault::Db | Fault::Queue | Fault::Store)
    }
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let exe = std::env::current_exe().context("cannot find the longhaul binary to run")?;
    let dir = tempfile::Builder::new().prefix("longhaul-chaos-").tempdir().context("cannot create a work dir")?;
    let mut harness = Harness::new(exe, dir.path().to_owned(), &args, seed).await?;
    eprintln!(
        "chaos on {:?}: {} s, seed {seed}, work dir {} (logs kept there on failure)",
        args.backend,
        args.duration_secs,
        dir.path().display()
    );
    let outcome = harness.run(&args, seed).await;
    harness.stop_all().await;
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            harness.keep_logs(dir);
            return Err(err);
        }
    };
    harness.db.close().await;
    // A failed run keeps its database, for the post-mortem.
    if !args.keep && report.passed() {
        harness.drop_database().await;
    } else if let Some(admin_url) = &harness.admin_url {
        eprintln!("the database {} is kept on {}", harness.database, longhaul_jobs::store::redact_url(admin_url));
    }
    println!("{}", report.summary());
    println!("{}", report.json());
    if report.passed() {
        if args.keep {
            harness.keep_logs(dir);
        }
        Ok(ExitCode::SUCCESS)
    } else {
        harness.keep_logs(dir);
        Ok(ExitCode::FAILURE)
    }
}

/// The processes under test and the database they share.
struct Harness {
    exe: PathBuf,
    dir: PathBuf,
    backend: ChaosBackend,
    /// The server the chaos database was created on (PostgreSQL).
    admin_url: Option<String>,
    database: String,
    db: Db,
    env: Vec<(String, String)>,
    url: String,
    listen: String,
    api: Option<Proc>,
    workers: Vec<Proc>,
    spawned: usize,
    lease: Duration,
    outages: Outages,
    /// Processes that exited without a fault telling them to (name and
    /// log), each started again.
    crashed: Vec<String>,
}

impl Harness {
    async fn new(exe: PathBuf, dir: PathBuf, args: &ChaosArgs, seed: u64) -> anyhow::Result<Harness> {
        let data_dir = dir.join("data");
        std::fs::create_dir_all(data_dir.join("objects")).context("cannot create the data dir")?;
        // The API takes dev tokens signed with this key; the harness mints its own.
        auth::load_or_create_dev_key(&dev_key_path(&data_dir))?;
        let database = format!("longhaul_chaos_{}", seed % 1_000_000_000);
        let (database_url, admin_url) = match args.backend {
            ChaosBackend::Sqlite => (format!("sqlite://{}", data_dir.join("longhaul.db").display()), None),
            ChaosBackend::Postgres | ChaosBackend::Sqs => {
                let url = crate::bench::create_postgres_database(&args.database_url, &database).await?;
                (url, Some(args.database_url.clone()))
            }
        };
        let lease = Duration::from_secs(args.lease_secs.max(2));
        let mut outages = Outages { queue_outage: Duration::from_secs(args.queue_outage_secs), ..Outages::default() };
        let process_database_url = match args.backend {
            ChaosBackend::Postgres => {
                let proxy = Proxy::start(upstream(&database_url)?).await?;
                let url = through(&database_url, proxy.address)?;
                outages.db = Some(Arc::new(proxy));
                url
            }
            _ => database_url.clone(),
        };
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = vec![
            ("LONGHAUL_DATABASE_URL".into(), process_database_url),
            ("LONGHAUL_DATA_DIR".into(), data_dir.display().to_string()),
            ("LONGHAUL_DEV_SIGNING_KEY_FILE".into(), dev_key_path(&data_dir).display().to_string()),
            ("LONGHAUL_LOG".into(), "info".into()),
            ("LONGHAUL_LOG_FORMAT".into(), "text".into()),
            ("LONGHAUL_WORKER_LISTEN".into(), "off".into()),
            ("LONGHAUL_LEASE_SECS".into(), lease.as_secs().to_string()),
            ("LONGHAUL_HEARTBEAT_SECS".into(), "1".into()),
            ("LONGHAUL_POLL_INTERVAL_MS".into(), "100".into()),
            ("LONGHAUL_REAP_INTERVAL_SECS".into(), "1".into()),
            ("LONGHAUL_SHUTDOWN_GRACE_SECS".into(), "3".into()),
            ("LONGHAUL_RETRY_BASE_MS".into(), "200".into()),
            ("LONGHAUL_RETRY_MAX_SECS".into(), "2".into()),
            // One tenant: it may use every slot, as a single-tenant install.
            ("LONGHAUL_TENANT_SHARE".into(), "1".into()),
            // No sweeps: every job here is the harness's.
            ("LONGHAUL_SWEEP_INTERVAL_SECS".into(), "0".into()),
            // The harness is the only client; limits are not under test.
            ("LONGHAUL_RATE_LIMIT_JOBS_PER_USER".into(), "1000000".into()),
            ("LONGHAUL_RATE_LIMIT_JOBS_PER_TENANT".into(), "1000000".into()),
        ];
        if args.backend == ChaosBackend::Sqs {
            // Fresh queues of their own on the endpoint the AWS_* variables name.
            let Some(endpoint) = crate::config::env("AWS_ENDPOINT_URL") else {
                bail!("--backend sqs needs AWS_ENDPOINT_URL (a local SQS and S3 endpoint, such as moto_server) and AWS credentials");
            };
            let sqs = longhaul_jobs::queue::sqs_client(&longhaul_jobs::queue::load_sdk_config().await);
            let config = longhaul_jobs::queue::create_lane_queues(
                &sqs,
                &format!("chaos-{}-", &Uuid::new_v4().simple().to_string()[..10]),
                5,
            )
            .await
            .context("cannot create the chaos run's SQS queues")?;
            let url = config
                .lanes
                .get(&longhaul_jobs::Lane::Default)
                .map(|lane| lane.url.clone())
                .context("no queue for the default lane")?;
            let prefix = url.strip_suffix("default").context("a queue URL that does not end in its lane")?;
            env.push(("LONGHAUL_QUEUE".into(), "sqs".into()));
            env.push(("LONGHAUL_SQS_QUEUE_PREFIX".into(), prefix.to_owned()));

            // Reports keep their artifacts on S3, in a fresh bucket.
            let bucket = format!("longhaul-chaos-{}", &Uuid::new_v4().simple().to_string()[..12]);
            let store_url = format!("s3://{bucket}/chaos");
            let store = longhaul_jobs::objects::S3Store::from_env(&store_url).await?;
            store
                .client()
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|err| anyhow::anyhow!("cannot create the chaos run's bucket {bucket}: {err:?}"))?;
            env.push(("LONGHAUL_OBJECT_STORE".into(), store_url));

            // SQS and S3 each reach the processes through a proxy of their
            // own (the SDKs take `AWS_ENDPOINT_URL_<SERVICE>` over
            // `AWS_ENDPOINT_URL`), so either can be taken away alone.
            let queue = Proxy::start(upstream(&endpoint)?).await?;
            env.push(("AWS_ENDPOINT_URL_SQS".into(), through_endpoint(&endpoint, queue.address)?));
            outages.queue = Some(Arc::new(queue));
            let store = Proxy::start(upstream(&endpoint)?).await?;
            env.push(("AWS_ENDPOINT_URL_S3".into(), through_endpoint(&endpoint, store.address)?));
            outages.store = Some(Arc::new(store));
        }
        let mut harness = Harness {
            exe,
            dir,
            backend: args.backend,
            admin_url,
            database,
            db: Db::Pending,
            env,
            url: format!("http://{listen}"),
            listen,
            api: None,
            workers: Vec::new(),
            spawned: 0,
            lease,
            outages,
            crashed: Vec::new(),
        };
        // Migrated by the binary itself, then observed.
        let status = harness.command("migrate", &["migrate"])?.0.status().context("cannot run migrate")?;
        if !status.success() {
            bail!("`longhaul migrate` failed ({status}); see {}", harness.dir.display());
        }
        harness.db = Db::connect(&database_url).await?;
        harness.db.install_observers().await?;
        Ok(harness)
    }

    /// A `longhaul` command with the harness's environment only, logging to
    /// a file of its own.
    fn command(&mut self, name: &str, args: &[&str]) -> anyhow::Result<(Command, PathBuf)> {
        self.spawned += 1;
        let log_path = self.dir.join(format!("{:03}-{name}.log", self.spawned));
        let log = std::fs::File::create(&log_path).context("cannot create a log file")?;
        let mut command = Command::new(&self.exe);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LONGHAUL_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes the prctl system call, which is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            // If the harness dies, its children die with it.
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        Ok((command, log_path))
    }

    fn spawn(&mut self, name: &str, args: &[&str]) -> anyhow::Result<Proc> {
        let (mut command, log) = self.command(name, args)?;
        let child = command.spawn().with_context(|| format!("cannot start `longhaul {}`", args.join(" ")))?;
        Ok(Proc { name: name.to_owned(), child, log })
    }

    fn spawn_api(&mut self) -> anyhow::Result<Proc> {
        let listen = self.listen.clone();
        match self.backend {
            ChaosBackend::Sqlite => self.spawn("up", &["up", "--listen", &listen]),
            ChaosBackend::Postgres | ChaosBackend::Sqs => self.spawn("api", &["api", "--listen", &listen]),
        }
    }

    fn spawn_worker(&mut self, index: usize) -> anyhow::Result<Proc> {
        self.spawn(&format!("worker{index}"), &["worker", "--lanes", "default,reports", "--concurrency", "8"])
    }

    /// Every fault this backend can take: the process faults, and an outage
    /// of each dependency the run put behind a proxy. A database outage is
    /// injected on PostgreSQL with the embedded queue; on SQS it would also
    /// spend the messages' receive counts (see the README's Guarantees).
    fn default_faults(&self) -> Vec<Fault> {
        let mut faults = vec![Fault::Kill, Fault::Stop, Fault::Term];
        faults.extend([Fault::Db, Fault::Queue, Fault::Store].into_iter().filter(|&f| self.outages.proxy(f).is_some()));
        faults
    }

    /// The processes a fault may hit: the workers, or `up` on SQLite.
    fn victims(&self) -> usize {
        match self.backend {
            ChaosBackend::Sqlite => 1,
            _ => self.workers.len(),
        }
    }

    fn victim(&mut self, index: usize) -> Option<&mut Proc> {
        match self.backend {
            ChaosBackend::Sqlite => self.api.as_mut(),
            _ => self.workers.get_mut(index),
        }
    }

    fn respawn(&mut self, index: usize) -> anyhow::Result<()> {
        match self.backend {
            ChaosBackend::Sqlite => {
                self.api = Some(self.spawn_api()?);
            }
            _ => {
                let fresh = self.spawn_worker(index)?;
                if let Some(slot) = self.workers.get_mut(index) {
                    *slot = fresh;
                }
            }
        }
        Ok(())
    }

    async fn run(&mut self, args: &ChaosArgs, seed: u64) -> anyhow::Result<Report> {
        self.api = Some(self.spawn_api()?);
        if self.backend != ChaosBackend::Sqlite {
            for index in 0..args.workers.max(1) {
                let worker = self.spawn_worker(index)?;
                self.workers.push(worker);
            }
        }
        self.wait_ready(Duration::from_secs(60)).await?;
        let key = auth::load_dev_key(&dev_key_path(&self.dir.join("data")))?;
        let token = auth::mint_dev_token(&key, TENANT, "chaos-admin", auth::Role::Admin, Duration::from_secs(86_400))?;

        let submitter = Submitter::new(self.url.clone(), token, args.report_share, seed);
        let submitting = submitter.clone().run(args.rate.max(1), Duration::from_secs(args.duration_secs));

        let faults = self.inject(args, seed);
        let (faults, ()) = tokio::join!(faults, submitting);
        let faults = faults?;
        // Every submission answered, or given up after a while.
        submitter.settle(Duration::from_secs(60)).await;

        let drained = self.drain(Duration::from_secs(args.drain_timeout_secs)).await?;
        let mut report = self.db.report().await?;
        let (accepted, unanswered, http) = {
            let answers = submitter.answers();
            (answers.accepted.clone(), answers.unanswered, answers.statuses.clone())
        };
        report.accepted = accepted.len() as u64;
        report.unanswered = unanswered;
        report.http = http;
        report.faults = faults;
        report.drained = drained;
        report.backend = format!("{:?}", self.backend).to_lowercase();
        report.duration_secs = args.duration_secs;
        report.seed = seed;
        report.crashed = self.crashed.clone();
        let (found, succeeded) = self.db.found(&accepted).await?;
        report.missing = report.accepted - found.min(report.accepted);
        report.accepted_succeeded = succeeded;
        Ok(report)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = http.get(format!("{}/readyz", self.url)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(api) = self.api.as_mut() {
                if let Some(status) = api.child.try_wait()? {
                    bail!("`{}` exited ({status}) before it was ready; see {}", api.name, api.log.display());
                }
            }
            if Instant::now() > deadline {
                bail!("the API was not ready within {timeout:?}; see {}", self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Injects faults until the run's time is up, and counts each kind. The
    /// processes are hit on one timeline and the dependencies are taken away
    /// on another, so that a 30 s queue outage does not pause the kills.
    async fn inject(&mut self, args: &ChaosArgs, seed: u64) -> anyhow::Result<BTreeMap<&'static str, u64>> {
        let faults: Vec<Fault> = if args.faults.is_empty() { self.default_faults() } else { args.faults.clone() };
        if let Some(&fault) = faults.iter().find(|&&f| f.is_outage() && self.outages.proxy(f).is_none()) {
            let backend = if fault == Fault::Db { "postgres" } else { "sqs" };
            bail!("the `{}` fault needs --backend {backend}", fault.name());
        }
        let (outages, processes): (Vec<Fault>, Vec<Fault>) = faults.into_iter().partition(|f| f.is_outage());
        let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
        let outages = self.outages.clone().inject(outages, deadline, StdRng::seed_from_u64(seed ^ 0x0d7a6e));
        let processes = self.hit_processes(processes, deadline, StdRng::seed_from_u64(seed ^ 0x5eed));
        let (mut counts, processes) = tokio::join!(outages, processes);
        counts.extend(processes?);
        Ok(counts)
    }

    /// Hits random processes with `faults` until `deadline`.
    async fn hit_processes(
        &mut self,
        faults: Vec<Fault>,
        deadline: Instant,
        mut rng: StdRng,
    ) -> anyhow::Result<BTreeMap<&'static str, u64>> {
        let mut counts = Rounds::counts(&faults);
        // Let work get under way before the first fault.
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..2_000))).await;
        let mut rounds = Rounds::new(faults);
        while Instant::now() < deadline {
            self.revive()?;
            let Some(fault) = rounds.next(&mut rng) else { break };
            let index = rng.random_range(0..self.victims());
            match fault {
                Fault::Kill => {
                    if let Some(victim) = self.victim(index) {
                        victim.signal(Signal::SIGKILL)?;
                        victim.wait(Duration::from_secs(10)).await;
                    }
                    if self.backend == ChaosBackend::Sqlite {
                        // The process's port must be free before it comes back.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    self.respawn(index)?;
                }
                Fault::Stop => {
                    let pause = self.lease + Duration::from_millis(rng.random_range(1_000..3_000));
                    if let Some(victim) = self.victim(index) {
                        victim.signal(Signal::SIGSTOP)?;
                        tokio::time::sleep(pause).await;
                        victim.signal(Signal::SIGCONT)?;
                    }
                }
                Fault::Term => {
                    if let Some(victim) = self.victim(index) {
                        victim.signal(Signal::SIGTERM)?;
                        if !victim.wait(Duration::from_secs(30)).await {
                            bail!(
                                "`{}` did not exit within 30 s of SIGTERM; see {}",
                                victim.name,
                                victim.log.display()
                            );
                        }
                    }
                    self.respawn(index)?;
                }
                // On the other timeline (see `inject`).
                Fault::Db | Fault::Queue | Fault::Store => continue,
            }
            *counts.entry(fault.name()).or_default() += 1;
            if self.backend == ChaosBackend::Sqlite {
                self.wait_ready(Duration::from_secs(60)).await?;
            }
            let gap = Duration::from_millis(rng.random_range(500..2_500));
            tokio::time::sleep(gap.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        Ok(counts)
    }

    /// Starts again every process that exited without a fault telling it
    /// to, and records it: a crash is a finding, but the run goes on.
    fn revive(&mut self) -> anyhow::Result<()> {
        let mut exited = Vec::new();
        if let Some(api) = self.api.as_mut() {
            if let Some(status) = api.child.try_wait()? {
                exited.push((None, format!("`{}` exited ({status}); see {}", api.name, api.log.display())));
            }
        }
        for (index, worker) in self.workers.iter_mut().enumerate() {
            if let Some(status) = worker.child.try_wait()? {
                exited
                    .push((Some(index), format!("`{}` exited ({status}); see {}", worker.name, worker.log.display())));
            }
        }
        for (index, what) in exited {
            eprintln!("chaos: {what}");
            self.crashed.push(what);
            match index {
                Some(index) => {
                    let fresh = self.spawn_worker(index)?;
                    if let Some(slot) = self.workers.get_mut(index) {
                        *slot = fresh;
                    }
                }
                None => self.api = Some(self.spawn_api()?),
            }
        }
        Ok(())
    }

    /// Waits until no chaos job is queued or running. False if the time ran out.
    async fn drain(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            self.revive()?;
            if self.db.unfinished().await? == 0 {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM to everything still running, then SIGKILL after a while.
    async fn stop_all(&mut self) {
        let mut all: Vec<&mut Proc> = self.workers.iter_mut().chain(self.api.as_mut()).collect();
        for process in &mut all {
            let _ = process.signal(Signal::SIGCONT);
            let _ = process.signal(Signal::SIGTERM);
        }
        for process in &mut all {
            if !process.wait(Duration::from_secs(15)).await {
                let _ = process.signal(Signal::SIGKILL);
                process.wait(Duration::from_secs(5)).await;
            }
        }
    }

    async fn drop_database(&self) {
        let Some(admin_url) = &self.admin_url else { return };
        if let Err(err) = crate::bench::drop_postgres_database(admin_url, &self.database).await {
            eprintln!("could not drop the chaos database {}: {err:#}", self.database);
        }
    }

    fn keep_logs(&self, dir: tempfile::TempDir) {
        let kept = dir.keep();
        eprintln!("the processes' logs are in {}", kept.display());
    }
}

/// One child process.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = i32::try_from(self.child.id()).context("a pid out of range")?;
        signal::kill(Pid::from_raw(pid), signal).with_context(|| format!("cannot send {signal} to {}", self.name))
    }

    /// Waits for the process to exit, at most `timeout`; true if it did.
    async fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() > deadline => return false,
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// What the API answered the harness.
#[derive(Default)]
struct Answers {
    accepted: Vec<Uuid>,
    /// Answers by status (`connection` for no answer at all).
    statuses: BTreeMap<String, u64>,
    in_flight: u64,
    /// Submissions given up without an answer that created or refused a job.
    unanswered: u64,
}

/// Submits jobs at a steady rate, each with an idempotency key it keeps
/// across retries, so a request whose answer was lost is sent again and
/// still makes one job.
#[derive(Clone)]
struct Submitter {
    http: reqwest::Client,
    url: String,
    token: String,
    report_share: f64,
    seed: u64,
    answers: Arc<Mutex<Answers>>,
}

impl Submitter {
    fn new(url: String, token: String, report_share: f64, seed: u64) -> Submitter {
        let http = reqwest::Client::builder()
            // Longer than the API's wait for a database connection (10 s), so
            // an outage shows as the API's answer (503), not as our timeout.
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Submitter { http, url, token, report_share, seed, answers: Arc::default() }
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn run(self, rate: u32, duration: Duration) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x50b);
        let every = Duration::from_secs(1) / rate;
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            ticker.tick().await;
            let body = if rng.random_bool(self.report_share.clamp(0.0, 1.0)) {
                json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026, "formats": ["json", "csv"]}})
            } else {
                json!({"kind": "noop", "payload": {"sleep_ms": rng.random_range(0..300)}})
            };
            self.answers().in_flight += 1;
            tokio::spawn(self.clone().submit(body, Instant::now() + duration + Duration::from_secs(60)));
        }
    }

    /// Sends one job until the API takes it or refuses it, retrying lost
    /// answers, 503 and 429 with the same key until `give_up`.
    async fn submit(self, body: Value, give_up: Instant) {
        let key = Uuid::new_v4().to_string();
        loop {
            let sent = self
                .http
                .post(format!("{}/v1/jobs", self.url))
                .bearer_auth(&self.token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            let (label, retry_after, job) = match sent {
                Err(_) => ("connection".to_owned(), Some(Duration::from_millis(250)), None),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let job = if status.is_success() {
                        response
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|job| job["id"].as_str().and_then(|id| id.parse().ok()))
                    } else {
                        None
                    };
                    let retry = match status.as_u16() {
                        503 | 429 | 502 | 504 => Some(retry_after.unwrap_or(Duration::from_millis(250))),
                        _ => None,
                    };
                    (status.as_u16().to_string(), retry, job)
                }
            };
            let wait = {
                let mut answers = self.answers();
                *answers.statuses.entry(label).or_default() += 1;
                match (job, retry_after) {
                    (Some(id), _) => {
                        answers.accepted.push(id);
                        None
                    }
                    (None, Some(after)) if Instant::now() + after < give_up => Some(after),
                    (None, Some(_)) => {
                        answers.unanswered += 1;
                        None
                    }
                    // Refused for good (a 4xx, or a 500): counted by its status.
                    (None, None) => None,
                }
            };
            match wait {
                Some(after) => tokio::time::sleep(after.min(Duration::from_secs(5))).await,
                None => {
                    self.answers().in_flight -= 1;
                    return;
                }
            }
        }
    }

    /// Waits until every submission has its answer, at most `timeout`.
    async fn settle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.answers().in_flight > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The chaos database, seen through raw SQL.
enum Db {
    Pending,
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Counters the code under test cannot touch: every transition of a job
/// into `succeeded`, every write to a job that had already succeeded, and
/// every `job.succeeded` event the outbox received.
const POSTGRES_OBSERVERS: &str = r#"
CREATE TABLE chaos_completions (job_id uuid NOT NULL, attempts int NOT NULL);
CREATE TABLE chaos_rewrites (job_id uuid NOT NULL, status text NOT NULL);
CREATE TABLE chaos_events (job_id text, event_type text NOT NULL);
CREATE FUNCTION chaos_count_completions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'succeeded' AND OLD.status <> 'succeeded' THEN
        INSERT INTO chaos_completions VALUES (NEW.id, NEW.attempts);
    END IF;
    IF OLD.status = 'succeeded' THEN
        INSERT INTO chaos_rewrites VALUES (OLD.id, NEW.status);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_count_completions AFTER UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION chaos_count_completions();
CREATE FUNCTION chaos_count_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_events VALUES (NEW.payload->>'job_id', NEW.event_type);
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_count_events AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION chaos_count_events();
"#;

const SQLITE_OBSERVERS: &str = r#"
CREATE TABLE chaos_completions (job_id TEXT NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE chaos_rewrites (job_id TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE chaos_events (job_id TEXT, event_type TEXT NOT NULL);
CREATE TRIGGER chaos_count_completions AFTER UPDATE ON jobs
WHEN NEW.status = 'succeeded' AND OLD.status <> 'succeeded'
BEGIN
    INSERT INTO chaos_completions VALUES (NEW.id, NEW.attempts);
END;
CREATE TRIGGER chaos_count_rewrites AFTER UPDATE ON jobs
WHEN OLD.status = 'succeeded'
BEGIN
    INSERT INTO chaos_rewrites VALUES (OLD.id, NEW.status);
END;
CREATE TRIGGER chaos_count_events AFTER INSERT ON outbox
BEGIN
    INSERT INTO chaos_events VALUES (json_extract(NEW.payload, '$.job_id'), NEW.event_type);
END;
"#;

/// Chaos jobs not yet final.
const UNFINISHED: &str = "SELECT count(*) FROM jobs WHERE tenant_id = 'chaos' AND status IN ('queued', 'running')";

/// The report's figures, as SQL over the chaos tenant's jobs. Each is one
/// number; the two backends share them (ids compare as text).
const FIGURES: &[(&str, &str)] = &[
    ("jobs", "SELECT count(*) FROM jobs WHERE tenant_id = 'chaos'"),
    ("succeeded", "SELECT count(*) FROM jobs WHERE tenant_id = 'chaos' AND status = 'succeeded'"),
    ("dead", "SELECT count(*) FROM jobs WHERE tenant_id = 'chaos' AND status = 'dead'"),
    ("unfinished", UNFINISHED),
    ("extra_attempts", "SELECT coalesce(sum(attempts - 1), 0) FROM jobs WHERE tenant_id = 'chaos' AND attempts > 1"),
    ("reports", "SELECT count(*) FROM jobs WHERE tenant_id = 'chaos' AND kind = 'report_build'"),
    (
        "doubled",
        "SELECT count(*) FROM (SELECT job_id FROM chaos_completions GROUP BY job_id HAVING count(*) > 1 \
         UNION SELECT job_id FROM chaos_rewrites) d",
    ),
    (
        "events_wrong",
        "SELECT count(*) FROM jobs j WHERE j.tenant_id = 'chaos' AND j.kind = 'report_build' AND \
         (SELECT count(*) FROM chaos_events e WHERE e.job_id = CAST(j.id AS TEXT) AND e.event_type = 'job.succeeded') \
         <> CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END",
    ),
    ("artifacts", "SELECT count(*) FROM artifacts WHERE tenant_id = 'chaos'"),
];

impl Db {
    async fn connect(url: &str) -> anyhow::Result<Db> {
        Ok(if url.starts_with("sqlite:") {
            Db::Sqlite(SqlitePoolOptions::new().max_connections(1).connect(url).await?)
        } else {
            Db::Postgres(PgPoolOptions::new().max_connections(2).connect(url).await?)
        })
    }

    async fn install_observers(&self) -> anyhow::Result<()> {
        match self {
            Db::Postgres(pool) => sqlx::raw_sql(POSTGRES_OBSERVERS).execute(pool).await.map(drop),
            Db::Sqlite(pool) => sqlx::raw_sql(SQLITE_OBSERVERS).execute(pool).await.map(drop),
            Db::Pending => return Ok(()),
        }
        .context("cannot install the chaos counters")
    }

    async fn number(&self, sql: &str) -> anyhow::Result<u64> {
        let value: i64 = match self {
            Db::Postgres(pool) => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?,
            Db::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?,
            Db::Pending => 0,
        };
        Ok(u64::try_from(value).unwrap_or(0))
    }

    async fn unfinished(&self) -> anyhow::Result<u64> {
        self.number(UNFINISHED).await
    }

    async fn report(&self) -> anyhow::Result<Report> {
        let mut figures = BTreeMap::new();
        for (name, sql) in FIGURES {
            figures.insert(*name, self.number(sql).await.with_context(|| format!("cannot count {name}"))?);
        }
        Ok(Report { figures, ..Report::default() })
    }

    /// Of the accepted jobs, how many the database has, and how many of
    /// those succeeded.
    async fn found(&self, accepted: &[Uuid]) -> anyhow::Result<(u64, u64)> {
        let (mut found, mut succeeded) = (0, 0);
        for chunk in accepted.chunks(500) {
            let (all, done): (i64, i64) =
                match self {
                    Db::Postgres(pool) => sqlx::query_as(
                        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM jobs WHERE id = ANY($1)",
                    )
                    .bind(chunk.to_vec())
                    .fetch_one(pool)
                    .await?,
                    Db::Sqlite(pool) => {
                        let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
                        sqlx::query_as(
                            "SELECT count(*), coalesce(sum(status = 'succeeded'), 0) FROM jobs \
                         WHERE id IN (SELECT value FROM json_each(?))",
                        )
                        .bind(serde_json::to_string(&ids)?)
                        .fetch_one(pool)
                        .await?
                    }
                    Db::Pending => (0, 0),
                };
            found += u64::try_from(all).unwrap_or(0);
            succeeded += u64::try_from(done).unwrap_or(0);
        }
        Ok((found, succeeded))
    }

    async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => pool.close().await,
            Db::Pending => {}
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
struct Report {
    backend: String,
    duration_secs: u64,
    seed: u64,
    accepted: u64,
    /// Of those, how many succeeded.
    accepted_succeeded: u64,
    unanswered: u64,
    missing: u64,
    drained: bool,
    http: BTreeMap<String, u64>,
    faults: BTreeMap<&'static str, u64>,
    figures: BTreeMap<&'static str, u64>,
    /// Processes that exited by themselves.
    crashed: Vec<String>,
}

impl Report {
    fn figure(&self, name: &str) -> u64 {
        self.figures.get(name).copied().unwrap_or(0)
    }

    /// Accepted jobs that never succeeded: still unfinished, ended some other
    /// way, or missing altogether.
    fn lost(&self) -> u64 {
        self.accepted.saturating_sub(self.accepted_succeeded)
    }

    fn server_errors(&self) -> u64 {
        self.http.get("500").copied().unwrap_or(0)
    }

    fn passed(&self) -> bool {
        self.drained
            && self.lost() == 0
            && self.figure("doubled") == 0
            && self.figure("dead") == 0
            && self.figure("events_wrong") == 0
            && self.server_errors() == 0
            && self.unanswered == 0
            && self.crashed.is_empty()
            && self.accepted > 0
    }

    fn summary(&self) -> String {
        let faults: Vec<String> = self.faults.iter().map(|(name, n)| format!("{name} {n}")).collect();
        let http: Vec<String> = self.http.iter().map(|(status, n)| format!("{status} ×{n}")).collect();
        format!(
            "chaos {} ({} s, seed {}): {} jobs accepted ({} report_build), {} succeeded; \
             lost {}, doubled {}, dead {}, extra attempts {}, job.succeeded events wrong {}, \
             processes crashed {}; faults: {}; API answers: {}; {}",
            self.backend,
            self.duration_secs,
            self.seed,
            self.accepted,
            self.figure("reports"),
            self.figure("succeeded"),
            self.lost(),
            self.figure("doubled"),
            self.figure("dead"),
            self.figure("extra_attempts"),
            self.figure("events_wrong"),
            self.crashed.len(),
            faults.join(", "),
            http.join(", "),
            if self.passed() { "PASSED" } else { "FAILED" },
        )
    }

    fn json(&self) -> Value {
        json!({
            "backend": self.backend,
            "duration_secs": self.duration_secs,
            "seed": self.seed,
            "accepted": self.accepted,
            "unanswered": self.unanswered,
            "missing": self.missing,
            "drained": self.drained,
            "lost": self.lost(),
            "doubled": self.figure("doubled"),
            "dead": self.figure("dead"),
            "extra_attempts": self.figure("extra_attempts"),
            "events_wrong": self.figure("events_wrong"),
            "succeeded": self.figure("succeeded"),
            "report_build": self.figure("reports"),
            "artifacts": self.figure("artifacts"),
            "faults": self.faults,
            "http": self.http,
            "crashed": self.crashed.len(),
            "passed": self.passed(),
        })
    }
}

/// Faults in rounds, each a shuffle of every kind, so that a short run
/// still sees every kind.
struct Rounds {
    faults: Vec<Fault>,
    round: Vec<Fault>,
}

impl Rounds {
    fn new(faults: Vec<Fault>) -> Rounds {
        Rounds { faults, round: Vec::new() }
    }

    /// Zero of each kind, so that a kind never injected still shows.
    fn counts(faults: &[Fault]) -> BTreeMap<&'static str, u64> {
        faults.iter().map(|fault| (fault.name(), 0)).collect()
    }

    fn next(&mut self, rng: &mut StdRng) -> Option<Fault> {
        if self.round.is_empty() {
            self.round = self.faults.clone();
            self.round.shuffle(rng);
        }
        self.round.pop()
    }
}

/// The dependencies the harness can take away from the processes, each
/// behind a [`Proxy`] of its own; the harness itself reaches them directly.
#[derive(Clone, Default)]
struct Outages {
    /// PostgreSQL (postgres backend).
    db: Option<Arc<Proxy>>,
    /// The SQS endpoint (sqs backend).
    queue: Option<Arc<Proxy>>,
    /// S3 (sqs backend).
    store: Option<Arc<Proxy>>,
    /// How long the queue stays away (`--queue-outage-secs`).
    queue_outage: Duration,
}

impl Outages {
    fn proxy(&self, fault: Fault) -> Option<&Arc<Proxy>> {
        match fault {
            Fault::Db => self.db.as_ref(),
            Fault::Queue => self.queue.as_ref(),
            Fault::Store => self.store.as_ref(),
            Fault::Kill | Fault::Stop | Fault::Term => None,
        }
    }

    /// Takes the dependencies `faults` name away in turn, one at a time,
    /// until `deadline`; each comes back before the next goes, and before
    /// this returns.
    async fn inject(self, faults: Vec<Fault>, deadline: Instant, mut rng: StdRng) -> BTreeMap<&'static str, u64> {
        let mut counts = Rounds::counts(&faults);
        if faults.is_empty() {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..4_000))).await;
        let mut rounds = Rounds::new(faults);
        // After a queue outage the queue stays up for twice as long before
        // the next: a long outage now and then, not a queue that is mostly
        // away (each receive an outage cuts in flight counts towards its
        // message's poison limit; see the README's Guarantees).
        let mut queue_again_at = Instant::now();
        while Instant::now() < deadline {
            let Some(fault) = rounds.next(&mut rng) else { break };
            let Some(proxy) = self.proxy(fault) else { continue };
            if fault == Fault::Queue && Instant::now() < queue_again_at {
                tokio::time::sleep(Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now())))
                    .await;
                continue;
            }
            let outage = match fault {
                Fault::Queue => self.queue_outage,
                _ => Duration::from_millis(rng.random_range(3_000..8_000)),
            };
            proxy.cut(true);
            tokio::time::sleep(outage).await;
            proxy.cut(false);
            if fault == Fault::Queue {
                queue_again_at = Instant::now() + 2 * outage;
            }
            *counts.entry(fault.name()).or_default() += 1;
            let gap = Duration::from_millis(rng.random_range(2_000..5_000));
            tokio::time::sleep(gap.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        counts
    }
}

/// A TCP proxy the harness can cut: while cut, it closes every connection
/// it carries and closes new ones at once, as a restarting server would.
struct Proxy {
    address: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> anyhow::Result<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot start the proxy")?;
        let address = listener.local_addr()?;
        let (cut, watching) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *watching.borrow() {
                    continue; // dropped: the connection closes at once
                }
                let upstream = upstream.clone();
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Proxy { address, cut, task })
    }

    fn cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a PostgreSQL or HTTP URL.
fn upstream(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("an unreadable URL: {url}"))?;
    let host = parsed.host_str().with_context(|| format!("a URL without a host: {url}"))?;
    Ok(format!("{host}:{}", parsed.port_or_known_default().unwrap_or(5432)))
}

/// `url` pointed at `address` instead of its own host and port.
fn through(url: &str, address: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut parsed = reqwest::Url::parse(url).with_context(|| format!("an unreadable URL: {url}"))?;
    parsed.set_host(Some(&address.ip().to_string())).map_err(|err| anyhow::anyhow!("cannot set the host: {err}"))?;
    parsed.set_port(Some(address.port())).map_err(|()| anyhow::anyhow!("cannot set the port"))?;
    Ok(parsed.to_string())
}

/// An AWS endpoint URL pointed at `address`, without the trailing slash the
/// SDKs would double.
fn through_endpoint(url: &str, address: std::net::SocketAddr) -> anyhow::Result<String> {
    Ok(through(url, address)?.trim_end_matches('/').to_owned())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
