//! Fresh, isolated stores for tests, on both backends.
//!
//! PostgreSQL tests each get a database of their own, created from
//! `LONGHAUL_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped when the
//! [`TestStore`] is dropped. SQLite tests get a file in a temporary directory.

use std::{ops::Deref, sync::Arc};

use sqlx::{Connection, Executor, PgConnection};

use crate::{
    store::{PgStore, Result, SqliteStore, StoreError},
    DynStore,
};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store that cleans up after itself.
pub struct TestStore {
    pub store: DynStore,
    /// The same store as a dispatch port, when opened in dispatch mode.
    pub dispatch: Option<crate::store::DynDispatchStore>,
    /// The URL other processes (the real binary) can use to reach it.
    pub url: String,
    pub backend: Backend,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Postgres { admin_url: String, database: String },
    Sqlite { _dir: tempfile::TempDir },
}

impl Deref for TestStore {
    type Target = DynStore;
    fn deref(&self) -> &DynStore {
        &self.store
    }
}

/// The server test databases are created on.
pub fn postgres_admin_url() -> String {
    std::env::var("LONGHAUL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestStore {
    /// The job `id` once it has ended (succeeded, dead, cancelled), read
    /// every 25 ms; panics after `patience`.
    pub async fn wait_for_end(&self, id: uuid::Uuid, patience: std::time::Duration) -> crate::Job {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let job = self.get_job(&crate::Scope::Platform, id).await.ok().flatten();
            let Some(job) = job else { panic!("job {id} is not in the store") };
            if job.status.is_final() {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "the job never ended: {job:?}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    pub async fn new(backend: Backend) -> Result<TestStore> {
        TestStore::new_with(backend, crate::store::QueueMode::Embedded).await
    }

    /// A store for the queue `mode` says (dispatch mode needs PostgreSQL).
    pub async fn new_with(backend: Backend, mode: crate::store::QueueMode) -> Result<TestStore> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().map_err(|err| StoreError::Config(format!("temp dir: {err}")))?;
                let url = format!("sqlite://{}", dir.path().join("longhaul.db").display());
                let store = SqliteStore::connect(&url).await?;
                crate::store::JobStore::migrate(&store).await?;
                Ok(TestStore {
                    store: Arc::new(store),
                    dispatch: None,
                    url,
                    backend,
                    cleanup: Some(Cleanup::Sqlite { _dir: dir }),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let database = format!("longhaul_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&admin_url).await.map_err(|err| {
                    StoreError::Config(format!(
                        "cannot reach the test PostgreSQL at {} ({err}); start it, or set LONGHAUL_TEST_DATABASE_URL",
                        crate::store::redact_url(&admin_url)
                    ))
                })?;
                admin.execute(format!("CREATE DATABASE {database}").as_str()).await?;
                let url = with_database(&admin_url, &database);
                let store = Arc::new(PgStore::connect_with(&url, mode).await?);
                crate::store::JobStore::migrate(store.as_ref()).await?;
                let dispatch = (mode == crate::store::QueueMode::Dispatch)
                    .then(|| -> crate::store::DynDispatchStore { store.clone() });
                Ok(TestStore {
                    store,
                    dispatch,
                    url,
                    backend,
                    cleanup: Some(Cleanup::Postgres { admin_url, database }),
                })
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin_url, database }) = self.cleanup.take() {
            // Drop runs outside any runtime guarantee, so use a thread with a
            // runtime of its own. WITH (FORCE) ends the pool's connections.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                runtime.block_on(async move {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                        let _ =
                            admin.execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str()).await;
                    }
                });
            })
            .join();
        }
    }
}

/// `postgres://u@h:p/old?x` with its database replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Runs each named `async fn name(backend: Backend)` once per backend, as the
/// tests `name::sqlite` and `name::postgres`, so that a test is written once,
/// reads like the behaviour, and names its backend when it fails.
///
/// ```ignore
/// longhaul_jobs::on_every_backend!(claims_honour_priority, delayed_jobs_wait);
/// async fn claims_honour_priority(backend: Backend) { … }
/// ```
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Which object store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectBackend {
    File,
    #[cfg(feature = "aws")]
    S3,
}

/// The local S3 endpoint tests use: `LONGHAUL_TEST_AWS_ENDPOINT_URL`, which
/// `scripts/test.sh` points at the `moto_server` it starts.
#[cfg(feature = "aws")]
pub fn aws_endpoint_url() -> String {
    std::env::var("LONGHAUL_TEST_AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

/// SDK configuration for the local endpoint, with throwaway credentials.
#[cfg(feature = "aws")]
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_sdk_config_at(&aws_endpoint_url()).await
}

/// SDK configuration for a local endpoint at `url` (a test's own
/// `moto_server`), with throwaway credentials.
#[cfg(feature = "aws")]
pub async fn aws_sdk_config_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "longhaul-tests"))
        .load()
        .await
}

/// A fresh, empty object store: a temporary directory, or a bucket of its own
/// on the local S3 endpoint.
pub struct TestObjectStore {
    pub store: crate::objects::DynObjectStore,
    pub backend: ObjectBackend,
    /// The bucket, on S3.
    pub bucket: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for TestObjectStore {
    type Target = crate::objects::DynObjectStore;
    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl TestObjectStore {
    pub async fn new(backend: ObjectBackend) -> Result<TestObjectStore, crate::objects::ObjectError> {
        match backend {
            ObjectBackend::File => {
                let dir = tempfile::tempdir()?;
                let store = crate::objects::FileStore::new(dir.path()).await?;
                Ok(TestObjectStore { store: Arc::new(store), backend, bucket: None, _dir: Some(dir) })
            }
            #[cfg(feature = "aws")]
            ObjectBackend::S3 => {
                let bucket = format!("longhaul-test-{}", uuid::Uuid::new_v4().simple());
                let store =
                    crate::objects::S3Store::new(&aws_sdk_config().await, &format!("s3://{bucket}/objects"), None)?;
                store.client().create_bucket().bucket(&bucket).send().await.map_err(|err| {
                    crate::objects::ObjectError::Config(format!(
                        "cannot create a test bucket at {} ({}); start moto_server there, or set LONGHAUL_TEST_AWS_ENDPOINT_URL",
                        aws_endpoint_url(),
                        aws_sdk_s3::error::DisplayErrorContext(err)
                    ))
                })?;
                Ok(TestObjectStore { store: Arc::new(store), backend, bucket: Some(bucket), _dir: None })
            }
        }
    }
}

/// Which queue a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueBackend {
    EmbeddedSqlite,
    EmbeddedPostgres,
    #[cfg(feature = "aws")]
    Sqs,
}

/// A fresh queue over a fresh store. On SQS: a PostgreSQL store in dispatch
/// mode, and a queue and dead-letter queue per lane of its own on the local
/// endpoint, long-polling for at most a second.
pub struct TestQueue {
    pub queue: crate::queue::DynQueue,
    pub store: TestStore,
    pub backend: QueueBackend,
    #[cfg(feature = "aws")]
    pub sqs: Option<(aws_sdk_sqs::Client, crate::queue::SqsConfig)>,
}

impl TestQueue {
    pub async fn new(backend: QueueBackend) -> std::result::Result<TestQueue, crate::queue::QueueError> {
        match backend {
            QueueBackend::EmbeddedSqlite | QueueBackend::EmbeddedPostgres => {
                let db = if backend == QueueBackend::EmbeddedSqlite { Backend::Sqlite } else { Backend::Postgres };
                let store = TestStore::new(db).await?;
                let queue = Arc::new(crate::queue::EmbeddedQueue::new(store.store.clone()));
                Ok(TestQueue {
                    queue,
                    store,
                    backend,
                    #[cfg(feature = "aws")]
                    sqs: None,
                })
            }
            #[cfg(feature = "aws")]
            QueueBackend::Sqs => {
                let store = TestStore::new_with(Backend::Postgres, crate::store::QueueMode::Dispatch).await?;
                let client = crate::queue::sqs_client(&aws_sdk_config().await);
                let prefix = format!("lh-{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let mut config = crate::queue::create_lane_queues(&client, &prefix, 3).await.map_err(|err| {
                    crate::queue::QueueError::Config(format!(
                        "cannot create test queues at {} ({err}); start moto_server there, or set LONGHAUL_TEST_AWS_ENDPOINT_URL",
                        aws_endpoint_url()
                    ))
                })?;
                config.wait = std::time::Duration::from_secs(1);
                let dispatch = store.dispatch.clone().ok_or_else(|| {
                    crate::queue::QueueError::Config("the test store was not opened in dispatch mode".into())
                })?;
                let queue = Arc::new(crate::queue::SqsQueue::new(dispatch, client.clone(), config.clone()));
                Ok(TestQueue { queue, store, backend, sqs: Some((client, config)) })
            }
        }
    }

    /// Sends whatever waits in the dispatch outbox (SQS); nothing to do on
    /// the embedded queue.
    pub async fn flush(&self) -> std::result::Result<usize, crate::queue::QueueError> {
        #[cfg(feature = "aws")]
        if let (Some((client, config)), Some(dispatch)) = (&self.sqs, &self.store.dispatch) {
            let dispatcher = crate::queue::Dispatcher::new(dispatch.clone(), client.clone(), config.clone());
            let mut sent = 0;
            loop {
                let round = dispatcher.dispatch_once().await?;
                sent += round;
                if round == 0 {
                    return Ok(sent);
                }
            }
        }
        Ok(0)
    }
}

/// Runs each named `async fn name(backend: QueueBackend)` once per queue
/// backend, as `name::embedded_sqlite`, `name::embedded_postgres` and `name::sqs`.
#[macro_export]
macro_rules! on_every_queue {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded_sqlite() {
                    super::$name($crate::testing::QueueBackend::EmbeddedSqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded_postgres() {
                    super::$name($crate::testing::QueueBackend::EmbeddedPostgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqs() {
                    super::$name($crate::testing::QueueBackend::Sqs).await
                }
            }
        )*
    };
}

/// Runs each named `async fn name(backend: ObjectBackend)` once per object
/// store backend, as `name::file` and `name::s3`.
#[macro_export]
macro_rules! on_every_object_store {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn file() {
                    super::$name($crate::testing::ObjectBackend::File).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn s3() {
                    super::$name($crate::testing::ObjectBackend::S3).await
                }
            }
        )*
    };
}
