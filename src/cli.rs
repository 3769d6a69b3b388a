//! The command line. Flags have environment variables of the same meaning;
//! as 12-factor wants, a set variable overrides its flag (see `config`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "longhaul", version, about = "Long-running jobs: API, workers and scheduler in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API, workers for every lane and the scheduler in one process, on
    /// embedded defaults (SQLite, local objects, the embedded queue).
    Up(UpArgs),
    /// The API only (the `api` container).
    Api(ApiArgs),
    /// Workers only (the `worker` containers), with the leader-elected scheduler.
    Worker(WorkerArgs),
    /// Apply database migrations, then exit.
    Migrate(MigrateArgs),
    /// Print a dev JWT signed with the data dir's dev key.
    Token(TokenArgs),
    /// Submit a job through the API.
    Submit(SubmitArgs),
    /// Submit one job of every kind on the sample data, against a running `up`.
    Demo(DemoArgs),
    /// Measure the queue: bulk insert, then drain no-op jobs with the real runtime.
    Bench(Box<BenchArgs>),
    /// Run the real binaries under faults (SIGKILL, SIGSTOP past the lease,
    /// SIGTERM and restart) while submitting jobs, then report from the
    /// database what was lost, committed twice or dead-lettered. Exits
    /// non-zero unless none was.
    Chaos(ChaosArgs),
    /// The travel-agency simulator the refresh tests and bench talk to (a
    /// tool, not part of production).
    #[command(hide = true)]
    AgencySim(longhaul_agency_sim::Args),
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// postgres (api and workers, embedded queue), sqlite (one `up`), or sqs
    /// (api and workers on PostgreSQL, queues on `AWS_ENDPOINT_URL`)
    #[arg(long, value_enum, default_value = "postgres")]
    pub backend: crate::chaos::ChaosBackend,
    /// How long to submit jobs and inject faults
    #[arg(long, default_value_t = 60)]
    pub duration_secs: u64,
    /// Worker processes (postgres and sqs)
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Jobs submitted per second
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// The share of the jobs that are `report_build` (the rest are `noop`)
    #[arg(long, default_value_t = 0.2)]
    pub report_share: f64,
    /// The workers' lease; a stopped process stays stopped longer than this
    #[arg(long, default_value_t = 3)]
    pub lease_secs: u64,
    /// Faults to inject, comma-separated: kill, stop, term, db (postgres only), queue, store (sqs only); all the backend takes by default
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<crate::chaos::Fault>,
    /// How long a `queue` fault keeps the SQS endpoint away
    #[arg(long, default_value_t = 30)]
    pub queue_outage_secs: u64,
    /// After the run, how long jobs may take to drain before they count as lost
    #[arg(long, default_value_t = 180)]
    pub drain_timeout_secs: u64,
    /// The random seed (faults, victims, payloads); random when unset
    #[arg(long)]
    pub seed: Option<u64>,
    /// PostgreSQL server to create the chaos database on [env: LONGHAUL_CHAOS_DATABASE_URL]
    #[arg(long, env = "LONGHAUL_CHAOS_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// Keep the database and the processes' logs (they are kept anyway when the run fails)
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct DataDirArg {
    /// Where `up` keeps its SQLite database, objects and dev signing key [env: LONGHAUL_DATA_DIR]
    #[arg(long, default_value = "./.longhaul")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Address the API listens on [env: LONGHAUL_LISTEN]
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Address the API listens on [env: LONGHAUL_LISTEN]
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Comma-separated lanes to serve: video, reports, email, refresh, default [env: LONGHAUL_LANES]
    #[arg(long, value_delimiter = ',')]
    pub lanes: Vec<String>,
    /// Jobs run at once per lane; each lane's own default when unset [env: LONGHAUL_CONCURRENCY]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Address of /healthz, /readyz and /metrics, or `off` [env: LONGHAUL_WORKER_LISTEN]
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub user: String,
    /// user, admin or platform
    #[arg(long, default_value = "user")]
    pub role: String,
    /// How long the token is valid, in hours
    #[arg(long, default_value_t = 24 * 30)]
    pub ttl_hours: u64,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The API's base URL [env: LONGHAUL_URL]
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token; a dev admin token from the data dir's key when unset [env: LONGHAUL_TOKEN]
    #[arg(long)]
    pub token: Option<String>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The job kind: email_poll, reservation_refresh, report_build, video_compile, events_export, bulk_import, noop, …
    pub kind: String,
    /// The payload as JSON, or @file to read it from a file
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Show a progress bar until the job ends; exit non-zero unless it succeeded
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print one JSON object instead of the human summary
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure
    #[arg(long, value_enum, default_value = "queue")]
    pub workload: crate::bench::Workload,
    /// Where the jobs are kept: sqlite, postgres, or sqs (SQS requests per
    /// job, on PostgreSQL and a local AWS_ENDPOINT_URL)
    #[arg(long, value_enum, default_value = "postgres")]
    pub backend: crate::bench::Backend,
    /// Reservations in the report: the user's year for `year-summary`
    /// (default 5,000), the tenant's month for `vendor-analytics` (default
    /// 1,000,000)
    #[arg(long)]
    pub reservations: Option<usize>,
    /// With `--workload vendor-analytics`: distinct vendors in the month
    #[arg(long, default_value_t = 2_000)]
    pub vendors: usize,
    /// PostgreSQL server to create the bench database on [env: LONGHAUL_BENCH_DATABASE_URL]
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// Jobs to insert and drain
    #[arg(long, default_value_t = 50_000)]
    pub jobs: usize,
    /// Worker slots in the lane. A claim never takes more than the free slots,
    /// so this must exceed the claim batch for claims and commits to overlap
    #[arg(long, default_value_t = 4_000)]
    pub concurrency: usize,
    /// Most jobs one claim takes
    #[arg(long, default_value_t = 1_000)]
    pub claim_batch: usize,
    /// Rows per insert statement
    #[arg(long, default_value_t = 10_000)]
    pub insert_batch: usize,
    /// Jobs trickled in afterwards to measure pickup latency
    #[arg(long, default_value_t = 2_000)]
    pub latency_jobs: usize,
    /// With `--workload queue`: tenants the jobs are spread over, in turn
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// With `--workload queue`: cap each tenant at this share of the slots,
    /// as `LONGHAUL_TENANT_SHARE` does (by default uncapped, like the peers)
    #[arg(long)]
    pub tenant_share: Option<f64>,
    /// Repeat the whole measurement this many times, each on a fresh database
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// With `--backend sqs`: receive loops per lane (each long-polls for up to 10 messages)
    #[arg(long, default_value_t = 4)]
    pub sqs_receivers: usize,
    /// With `--backend sqs`: most jobs waiting at once while the bench feeds them in
    #[arg(long, default_value_t = 500)]
    pub sqs_backlog: usize,
    /// With `--workload video`: photos in the film (the directory's photos, cycled)
    #[arg(long, default_value_t = 30)]
    pub photos: usize,
    /// With `--workload video`: where the photos are [default: assets/photos]
    #[arg(long)]
    pub photos_dir: Option<PathBuf>,
    /// With `--workload video`: 9:16 or 16:9
    #[arg(long, default_value = "9:16")]
    pub aspect: String,
    /// With `--workload video`: time only longhaul, not the ffmpeg CLI
    #[arg(long)]
    pub skip_cli: bool,
    /// With `--workload video`: keep the films in this directory
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// With `--workload email`: the .eml corpus [default: tests/fixtures/email]
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// With `--workload email`: passes over the corpus to time
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    /// With `--workload email`: an IMAP server (HOST:PORT, plain) taking any
    /// user with `--imap-password`, to count what an idle poll sends
    #[arg(long)]
    pub imap: Option<String>,
    #[arg(long, default_value = "longhaul-test")]
    pub imap_password: String,
    /// With `--workload refresh`: simulated agencies the reservations are
    /// spread over
    #[arg(long, default_value_t = 4)]
    pub providers: usize,
    /// With `--workload refresh`: seconds between sweeps (the simulator's
    /// change period too)
    #[arg(long, default_value_t = 300)]
    pub interval_secs: u64,
    /// With `--workload refresh`: the fraction of reservations the agencies
    /// change per interval
    #[arg(long, default_value_t = 0.01)]
    pub change_fraction: f64,
    /// With `--workload refresh`: the simulator's latency per request (and
    /// as much jitter), in milliseconds
    #[arg(long, default_value_t = 2)]
    pub latency_ms: u64,
    /// With `--workload refresh`: active reservations per shard
    #[arg(long, default_value_t = 10_000)]
    pub shard_size: u32,
    /// With `--workload refresh`: shard jobs running at once (the refresh
    /// lane's concurrency in this one worker process)
    #[arg(long, default_value_t = 2)]
    pub shard_jobs: usize,
    /// With `--workload refresh`: sweeps to measure
    #[arg(long, default_value_t = 3)]
    pub sweeps: usize,
    /// With `--workload events`: events sent through the API, and exported
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// With `--workload import`: rows of the CSV file imported
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// With `--workload import`: users the rows belong to
    #[arg(long, default_value_t = 100_000)]
    pub import_users: usize,
    /// With `--workload push`: notifications pushed, one device each
    #[arg(long, default_value_t = 5_000)]
    pub pushes: usize,
    /// With `--workload events`: events per `POST /v1/events` (at most 500)
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// With `--workload events`: HTTP clients sending batches at once
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// With `--workload fairness`: the jobs tenant A has queued before
    /// tenant B submits its own
    #[arg(long, default_value_t = 20_000)]
    pub backlog_jobs: usize,
    /// With `--workload fairness`: the jobs tenant B submits, one at a time
    #[arg(long, default_value_t = 20)]
    pub late_jobs: usize,
    /// With `--workload fairness`: the lane's slots (its concurrency)
    #[arg(long, default_value_t = 16)]
    pub slots: usize,
    /// With `--workload fairness`: how long each job runs, in milliseconds
    #[arg(long, default_value_t = 10)]
    pub job_ms: u64,
}
