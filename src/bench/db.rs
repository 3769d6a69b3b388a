//! The databases and queues a bench run lives in: a fresh PostgreSQL
//! database or SQLite file per run, and SQS queues of its own on a local
//! endpoint. `longhaul chaos` makes its PostgreSQL databases here too.

use std::sync::Arc;

use anyhow::{bail, Context};
use longhaul_jobs::DynStore;
use sqlx::{Connection, Executor, PgConnection};

use super::Backend;
use crate::cli::BenchArgs;

/// A database that exists for one run.
pub(crate) enum BenchDb {
    Postgres { admin_url: String, name: String, url: String },
    Sqlite { _dir: tempfile::TempDir, url: String },
}

impl BenchDb {
    pub(crate) async fn create(args: &BenchArgs) -> anyhow::Result<BenchDb> {
        match args.backend {
            Backend::Postgres => {
                let admin_url =
                    crate::config::env("LONGHAUL_BENCH_DATABASE_URL").unwrap_or_else(|| args.database_url.clone());
                let name = format!("longhaul_bench_{}", std::process::id());
                let url = create_postgres_database(&admin_url, &name).await?;
                Ok(BenchDb::Postgres { admin_url, name, url })
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(BenchDb::Sqlite { _dir: dir, url })
            }
            Backend::Sqs => bail!("the sqs bench runs on PostgreSQL; this is a bug in `longhaul bench`"),
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            BenchDb::Postgres { url, .. } | BenchDb::Sqlite { url, .. } => url,
        }
    }

    pub(super) async fn checkpoint(&self) -> anyhow::Result<()> {
        if let BenchDb::Postgres { url, .. } = self {
            let mut conn = PgConnection::connect(url).await?;
            conn.execute("CHECKPOINT").await?;
        }
        Ok(())
    }

    pub(crate) async fn drop_db(self) -> anyhow::Result<()> {
        if let BenchDb::Postgres { admin_url, name, .. } = self {
            drop_postgres_database(&admin_url, &name).await?;
        }
        Ok(())
    }
}

/// Creates the database `name` afresh (dropping one left by an earlier run)
/// on the server of `admin_url`, and returns its URL. For the bench and the
/// chaos harness, whose databases live for one run.
pub(crate) async fn create_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", longhaul_jobs::store::redact_url(admin_url)))?;
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    Ok(replace_database(admin_url, name))
}

/// Drops the database `name` on the server of `admin_url`, connections and all.
pub(crate) async fn drop_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
    Ok(())
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let start = base.find("://").map_or(0, |i| i + 3);
    let base = base[start..].find('/').map_or(base, |slash| &base[..start + slash]);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A fresh PostgreSQL database in dispatch mode and SQS queues of their own
/// on the local endpoint (`AWS_ENDPOINT_URL`), for one run of an SQS bench.
pub(crate) struct SqsBench {
    pub db: BenchDb,
    pub store: DynStore,
    /// The same store, as the dispatch port the queue sends from.
    pub outbox: longhaul_jobs::store::DynDispatchStore,
    pub queue: longhaul_jobs::queue::DynQueue,
}

impl SqsBench {
    pub(crate) async fn create(args: &BenchArgs, run: usize) -> anyhow::Result<SqsBench> {
        use longhaul_jobs::queue::{create_lane_queues, sqs_client, SqsQueue};
        let endpoint = crate::config::env("AWS_ENDPOINT_URL").context(
            "the sqs bench creates queues of its own, so it runs against a local endpoint: set AWS_ENDPOINT_URL \
             (for example to a moto_server)",
        )?;
        let postgres = BenchArgs { backend: Backend::Postgres, ..args.clone() };
        let db = BenchDb::create(&postgres).await?;
        let (store, outbox) = longhaul_jobs::database::connect_dispatch(db.url()).await?;
        store.migrate().await?;
        let sdk_config = aws_config_from_env().await;
        let client = sqs_client(&sdk_config);
        let prefix = format!("bench-{}-{}-{run}-", args.workload, std::process::id());
        let config = create_lane_queues(&client, &prefix, crate::config::DEFAULT_MAX_RECEIVE_COUNT)
            .await
            .with_context(|| format!("cannot create the bench queues at {endpoint}"))?;
        let queue: longhaul_jobs::queue::DynQueue = Arc::new(SqsQueue::new(outbox.clone(), client, config));
        Ok(SqsBench { db, store, outbox, queue })
    }
}

/// The standard AWS configuration, through the jobs crate's SDK.
pub(crate) async fn aws_config_from_env() -> longhaul_jobs::queue::SdkConfig {
    longhaul_jobs::queue::load_sdk_config().await
}
