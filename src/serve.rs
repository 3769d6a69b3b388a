//! The long-running commands: `up`, `api`, `worker`, and `migrate`.

use std::{
    future::IntoFuture,
    path::Path,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Json};
use backon::{ExponentialBuilder, Retryable};
use longhaul_api::{auth, problem::Problem, ApiConfig, ReadinessCheck};
use longhaul_jobs::{
    database,
    objects::{DynObjectStore, ObjectError},
    queue::{DynQueue, EmbeddedQueue, QueueError, SqsConfig, SqsQueue},
    store::{redact_url, DynDispatchStore, QueueMode, StoreError},
    DynStore,
};
use longhaul_workers::{
    kinds::{EmailPoll, EventsErase, EventsExport, ExportSettings, MailSettings, RefreshSettings, ReservationRefresh},
    runtime::Services,
    Registry, Runtime, WorkerConfig,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    cli::{ApiArgs, MigrateArgs, UpArgs, WorkerArgs},
    config,
};

/// The tenant and user of the dev admin token `up` prints.
pub const DEV_TENANT: &str = "dev";
pub const DEV_ADMIN: &str = "admin";

/// Every kind, with `email_poll` able to open mail credentials. `local`
/// (`up`) lets polls reach loopback and private addresses unless
/// `LONGHAUL_MAIL_ALLOW_PRIVATE_HOSTS` says otherwise.
fn registry(
    secrets: Option<longhaul_jobs::travel::mail::Envelope>,
    config: &WorkerConfig,
    local: bool,
    agencies: longhaul_workers::agency::Agencies,
) -> anyhow::Result<Registry> {
    let mut registry = Registry::with_defaults();
    registry.register(EventsErase::new(secrets.clone()));
    registry.register(EventsExport::new(ExportSettings {
        secrets: secrets.clone(),
        raw_retention: config::events_raw_retention()?,
        ..ExportSettings::default()
    }));
    registry.register(EmailPoll::new(MailSettings {
        secrets,
        schedule: config.mail_poll,
        allow_private_hosts: config::flag("LONGHAUL_MAIL_ALLOW_PRIVATE_HOSTS")?.unwrap_or(local),
        imap: config::imap_limits()?,
        ..MailSettings::default()
    }));
    registry.register(ReservationRefresh::new(RefreshSettings { agencies, ..RefreshSettings::default() }));
    Ok(registry)
}

pub fn dev_key_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("dev-signing.key")
}

/// Opens the object store and checks it answers, so that a misconfigured
/// bucket fails the start rather than the first artifact (an outage is
/// waited out; see [`wait_for`]).
async fn open_objects(data_dir: &Path) -> anyhow::Result<DynObjectStore> {
    let url = config::object_store_url(data_dir);
    let objects =
        longhaul_jobs::objects::connect(&url).await.with_context(|| format!("cannot open the object store {url}"))?;
    wait_for("the object store", || objects.ping(), |err| matches!(err, ObjectError::Config(_)))
        .await
        .with_context(|| format!("the object store {url} does not answer"))?;
    Ok(objects)
}

/// `/readyz` also needs the object store.
struct ObjectStoreReady(DynObjectStore);

#[async_trait::async_trait]
impl ReadinessCheck for ObjectStoreReady {
    fn name(&self) -> &str {
        "object store"
    }

    async fn check(&self) -> anyhow::Result<()> {
        Ok(self.0.ping().await?)
    }
}

/// `/readyz` also needs the queue, when it is not the database.
struct QueueReady(DynQueue);

#[async_trait::async_trait]
impl ReadinessCheck for QueueReady {
    fn name(&self) -> &str {
        "queue"
    }

    async fn check(&self) -> anyhow::Result<()> {
        Ok(self.0.ping().await?)
    }
}

/// `/readyz` of a worker needs the database.
struct StoreReady(DynStore);

#[async_trait::async_trait]
impl ReadinessCheck for StoreReady {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> anyhow::Result<()> {
        Ok(self.0.ping().await?)
    }
}

/// The store a process opened, with what its queue needs of it: on SQS, the
/// store's dispatch port, so that the SQS queue cannot be built on a store
/// without an outbox.
enum Opened {
    Embedded(DynStore),
    Sqs(DynStore, DynDispatchStore, SqsConfig),
}

impl Opened {
    fn store(&self) -> DynStore {
        match self {
            Opened::Embedded(store) | Opened::Sqs(store, _, _) => store.clone(),
        }
    }
}

/// The store, opened for the queue the settings name. Its queue mode is
/// checked against the database's (`record_mode`: set it, for `migrate`).
async fn open_store(
    url: &str,
    migrate: bool,
    record_mode: bool,
    queue: &config::QueueSettings,
) -> anyhow::Result<Opened> {
    // A database server may be away for a moment (a restart, a failover),
    // and is waited for; a database file that cannot be opened is not.
    let server = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let refused = |err: &StoreError| !(server && err.is_unavailable());
    let opened = match queue {
        config::QueueSettings::Embedded => Opened::Embedded(
            wait_for("the database", || database::connect(url), refused)
                .await
                .with_context(|| format!("cannot open the database at {}", redact_url(url)))?,
        ),
        config::QueueSettings::Sqs(sqs) => {
            let (store, dispatch) = wait_for("the database", || database::connect_dispatch(url), refused)
                .await
                .with_context(|| format!("cannot open the database at {}", redact_url(url)))?;
            Opened::Sqs(store, dispatch, sqs.clone())
        }
    };
    let (store, mode) = match &opened {
        Opened::Embedded(store) => (store.clone(), QueueMode::Embedded),
        Opened::Sqs(store, _, _) => (store.clone(), QueueMode::Dispatch),
    };
    if migrate {
        store.migrate().await.context("applying migrations")?;
    }
    wait_for("the database", || store.check_queue_mode(mode, record_mode), refused).await?;
    Ok(opened)
}

/// The queue of the opened store, checked to answer, with the readiness
/// checks it adds.
async fn open_queue(opened: &Opened) -> anyhow::Result<(DynQueue, Vec<Arc<dyn ReadinessCheck>>)> {
    match opened {
        Opened::Embedded(store) => Ok((Arc::new(EmbeddedQueue::new(store.clone())), Vec::new())),
        Opened::Sqs(_, dispatch, sqs) => {
            let queue: DynQueue = Arc::new(SqsQueue::from_env(dispatch.clone(), sqs.clone()).await);
            wait_for("the SQS queues", || queue.ping(), |err| matches!(err, QueueError::Config(_)))
                .await
                .context("the SQS queues do not answer (LONGHAUL_SQS_QUEUE_PREFIX, AWS_*)")?;
            Ok((queue.clone(), vec![Arc::new(QueueReady(queue))]))
        }
    }
}

/// How long a process that starts while a dependency (the database server,
/// the queue service, the object store) does not answer, as in an outage or
/// while the network comes up, waits for it before it gives up.
const STARTUP_WAIT: Duration = Duration::from_secs(300);

/// Pings `dependency` until it answers. A process started during an outage
/// waits instead of exiting (and crash-looping) through it; an answer that
/// says the configuration is wrong (`refused`: missing, forbidden) fails the
/// start at once, as does an outage longer than [`STARTUP_WAIT`].
async fn wait_for<T, E, Fut>(dependency: &str, ping: impl FnMut() -> Fut, refused: impl Fn(&E) -> bool) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let retries = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times();
    ping.retry(retries)
        .when(|err| !refused(err) && started.elapsed() < STARTUP_WAIT)
        .notify(|err, next| {
            let retry_in_ms = u64::try_from(next.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(dependency, error = %err, retry_in_ms, "a dependency does not answer yet; waiting for it");
        })
        .await
}

/// Trips on SIGTERM or SIGINT.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trip = token.clone();
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received; shutting down"),
            _ = terminate => tracing::info!("SIGTERM received; shutting down"),
        }
        trip.cancel();
    });
    token
}

/// How long open connections get to finish after a stop. Event streams of
/// running jobs would otherwise hold the process until their jobs end.
const API_DRAIN: Duration = Duration::from_secs(10);

/// Serves the API until `stop` trips, then lets open requests finish for at
/// most [`API_DRAIN`]. The server cuts off clients that send their requests
/// too slowly (`timeouts`), and gives each request the peer's address, for
/// the audit log's "from where".
async fn serve_api(
    listener: TcpListener,
    router: axum::Router,
    timeouts: longhaul_api::server::HttpTimeouts,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "API listening");
    let server = tokio::spawn(longhaul_api::server::serve(listener, router, timeouts, stop.clone()));
    stop.cancelled().await;
    match tokio::time::timeout(API_DRAIN, server).await {
        Ok(Ok(served)) => served.context("the API server failed"),
        Ok(Err(joined)) => Err(anyhow::anyhow!("the API server task failed: {joined}")),
        Err(_) => {
            tracing::warn!(drain_secs = API_DRAIN.as_secs(), "open connections did not close in time; dropping them");
            Ok(())
        }
    }
}

async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))
}

pub async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let queue_settings = config::queue()?;
    let data_dir = config::data_dir(&args.data_dir.data_dir);
    let listen = config::listen(&args.listen);
    std::fs::create_dir_all(data_dir.join("objects"))
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let key_path =
        config::env("LONGHAUL_DEV_SIGNING_KEY_FILE").map(Into::into).unwrap_or_else(|| dev_key_path(&data_dir));
    let dev_key = auth::load_or_create_dev_key(&key_path)?;
    let url = config::database_url(&data_dir);
    let opened = open_store(&url, true, false, &queue_settings).await?;
    let store = opened.store();
    let objects = open_objects(&data_dir).await?;
    let (queue, mut readiness) = open_queue(&opened).await?;
    readiness.push(Arc::new(ObjectStoreReady(objects.clone())));
    let worker_config = config::worker(&[], None)?;
    let secrets = config::secrets(&data_dir, true)?;
    let api_config = ApiConfig {
        body_limit: config::body_limit()?,
        readiness,
        secrets: secrets.clone(),
        queue: Some(queue.clone()),
        objects: Some(objects.clone()),
        metrics: crate::telemetry::metrics(),
        auth: config::auth(Some(dev_key.clone())),
        limits: config::limits()?,
        timeouts: config::http_timeouts()?,
        ..ApiConfig::default()
    };
    let token =
        auth::mint_dev_token(&dev_key, DEV_TENANT, DEV_ADMIN, auth::Role::Admin, Duration::from_secs(30 * 24 * 3600))?;
    let stop = shutdown_signal();
    let api_config = ApiConfig { shutdown: stop.clone(), ..api_config };
    let notifier = longhaul_jobs::notify::from_env().await?;
    let push = longhaul_jobs::notify::push::from_env().await?;
    let services = Services { store: store.clone(), queue, notifier, objects: Some(objects.clone()), push };
    // The sweep's agencies: the operator's, or the simulator, in this process.
    let (simulator, agencies) = match config::env("LONGHAUL_AGENCIES_FILE") {
        Some(_) => {
            let stale = crate::simulator::SimulatorFile::path(&data_dir);
            if let Err(err) = std::fs::remove_file(&stale) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %stale.display(), error = %err, "cannot remove the simulator file of an earlier start");
                }
            }
            (None, config::agencies()?)
        }
        None => {
            let (sim, agencies) = crate::simulator::start(&data_dir).await?;
            (Some(sim), agencies)
        }
    };
    let registry = registry(secrets, &worker_config, true, agencies)?;
    let runtime = Runtime::start_with(services, registry, worker_config);
    // Bind before printing, so the URL printed is one that answers.
    let listener = bind(&listen).await?;
    let address = listener.local_addr()?;
    println!("longhaul is up at http://{address}");
    println!("  database: {}", redact_url(&url));
    if let config::QueueSettings::Sqs(_) = queue_settings {
        println!("  queue: SQS");
    }
    if let Some(sim) = &simulator {
        println!("  agency simulator (LATAM Airlines, SkyWays Airlines): http://{}", sim.addr());
    }
    println!("  dev admin token (tenant `{DEV_TENANT}`, 30 days): {token}");
    println!("  try: curl -H 'Authorization: Bearer <token>' http://{address}/v1/admin/queues");
    println!("  dashboard: http://{address}/admin (sign in with the token above)");
    let timeouts = api_config.timeouts;
    let router = longhaul_api::router(store, api_config)?;
    // After a stop, the API drains and the workers finish side by side.
    let (served, ()) = tokio::join!(serve_api(listener, router, timeouts, stop.clone()), async {
        stop.cancelled().await;
        runtime.shutdown().await;
    });
    served?;
    drop(simulator);
    crate::telemetry::shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn api(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let queue_settings = config::queue()?;
    let data_dir = config::data_dir(&args.data_dir.data_dir);
    let opened = open_store(&config::database_url(&data_dir), false, false, &queue_settings).await?;
    let store = opened.store();
    let objects = open_objects(&data_dir).await?;
    let (queue, mut readiness) = open_queue(&opened).await?;
    readiness.push(Arc::new(ObjectStoreReady(objects.clone())));
    // Dev tokens only when the key file is named: production names none.
    let dev_key = match config::env("LONGHAUL_DEV_SIGNING_KEY_FILE") {
        Some(path) => Some(auth::load_dev_key(Path::new(&path))?),
        None => None,
    };
    let api_config = ApiConfig {
        body_limit: config::body_limit()?,
        readiness,
        secrets: config::secrets(&data_dir, false)?,
        queue: Some(queue),
        objects: Some(objects),
        metrics: crate::telemetry::metrics(),
        auth: config::auth(dev_key),
        limits: config::limits()?,
        timeouts: config::http_timeouts()?,
        ..ApiConfig::default()
    };
    let stop = shutdown_signal();
    let timeouts = api_config.timeouts;
    let router = longhaul_api::router(store, ApiConfig { shutdown: stop.clone(), ..api_config })?;
    serve_api(bind(&config::listen(&args.listen)).await?, router, timeouts, stop).await?;
    crate::telemetry::shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let queue_settings = config::queue()?;
    let data_dir = config::data_dir(&args.data_dir.data_dir);
    let worker_config: WorkerConfig = config::worker(&args.lanes, args.concurrency)?;
    let opened = open_store(&config::database_url(&data_dir), false, false, &queue_settings).await?;
    let store = opened.store();
    let (queue, mut readiness) = open_queue(&opened).await?;
    readiness.insert(0, Arc::new(StoreReady(store.clone())));
    let objects = open_objects(&data_dir).await?;
    // Bound before anything runs, so that a port in use fails the start;
    // the recorder is installed before the first job, so that it counts.
    let probes = match config::worker_listen(&args.listen) {
        Some(listen) => Some((bind(&listen).await?, crate::telemetry::metrics())),
        None => None,
    };
    tracing::info!(
        worker_id = %worker_config.worker_id,
        lanes = ?worker_config.lanes,
        lease_secs = worker_config.lease.as_secs_f64(),
        queue = queue.backend(),
        "worker starting"
    );
    let stop = shutdown_signal();
    let notifier = longhaul_jobs::notify::from_env().await?;
    let push = longhaul_jobs::notify::push::from_env().await?;
    let services = Services { store: store.clone(), queue, notifier, objects: Some(objects), push };
    let registry = registry(config::secrets(&data_dir, false)?, &worker_config, false, config::agencies()?)?;
    let runtime = Runtime::start_with(services, registry, worker_config);
    // The probes answer until the runtime has stopped: a worker that drains
    // its jobs is alive, only no longer ready.
    let probes_stop = CancellationToken::new();
    let probes = match probes {
        Some((listener, metrics)) => {
            let router = worker_router(WorkerProbes { store, readiness, metrics, stopping: stop.clone() });
            Some(serve_probes(listener, router, probes_stop.clone())?)
        }
        None => None,
    };
    stop.cancelled().await;
    runtime.shutdown().await;
    probes_stop.cancel();
    if let Some(probes) = probes {
        match tokio::time::timeout(Duration::from_secs(5), probes).await {
            Ok(Ok(Ok(()))) | Err(_) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the worker's HTTP server failed"),
            Ok(Err(joined)) => tracing::warn!(error = %joined, "the worker's HTTP server task failed"),
        }
    }
    tracing::info!("worker stopped");
    crate::telemetry::shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// What a worker's probes look at.
struct WorkerProbes {
    store: DynStore,
    /// The database, and the queue when it is not the database.
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Renders the process's metrics; `None`: `/metrics` answers 404.
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Trips at SIGTERM: from then on the worker is not ready.
    stopping: CancellationToken,
}

/// A worker's own endpoints, for Kubernetes and Prometheus: `/healthz` (the
/// process answers), `/readyz` (its database and queue answer, and it is
/// not stopping) and `/metrics`.
fn worker_router(probes: WorkerProbes) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(worker_readyz))
        .route("/metrics", get(worker_metrics))
        .fallback(longhaul_api::problem::not_found_fallback)
        .with_state(Arc::new(probes))
}

/// A probe that hangs is as bad as one that fails.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn worker_readyz(State(probes): State<Arc<WorkerProbes>>) -> axum::response::Response {
    if probes.stopping.is_cancelled() {
        return Problem::unavailable("not ready: stopping").into_response();
    }
    let checks = probes.readiness.iter().map(|check| async move {
        let error = match tokio::time::timeout(PROBE_TIMEOUT, check.check()).await {
            Ok(Ok(())) => return None,
            Ok(Err(err)) => format!("{err:#}"),
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        };
        // Logged, not returned: the cause may name hosts.
        tracing::warn!(check = check.name(), error, "readiness check failed");
        Some(check.name().to_owned())
    });
    let failures: Vec<String> = futures::future::join_all(checks).await.into_iter().flatten().collect();
    if failures.is_empty() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        Problem::unavailable(format!("not ready: {} unreachable", failures.join(", "))).into_response()
    }
}

/// The process's metrics (the same recorder as `up`'s API), with the
/// queues' gauges read from the store at most every two seconds.
async fn worker_metrics(State(probes): State<Arc<WorkerProbes>>) -> axum::response::Response {
    let Some(render) = &probes.metrics else {
        return Problem::not_found("this process records no metrics").into_response();
    };
    longhaul_api::metrics::refresh_queue_gauges(&probes.store).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response()
}

/// Serves a worker's probes until `stop` trips.
fn serve_probes(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    tracing::info!(address = %listener.local_addr()?, "worker probes and metrics listening");
    Ok(tokio::spawn(axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).into_future()))
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(&args.data_dir.data_dir);
    let url = config::database_url(&data_dir);
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    }
    // The deliberate place to set how this database's jobs are queued.
    open_store(&url, true, true, &config::queue()?).await?;
    eprintln!("migrations applied to {}", redact_url(&url));
    Ok(ExitCode::SUCCESS)
}
