//! `longhaul migrate` on an empty database: it applies the migrations, exits 0,
//! and running it again changes nothing.

mod support;

use std::time::Duration;

use longhaul_jobs::{
    model::Scope,
    store::JobFilter,
    testing::{postgres_admin_url, with_database, Backend},
};
use sqlx::{Connection, Executor, PgConnection};
use support::{noop_job, Launcher};

longhaul_jobs::on_every_backend!(migrate_applies_migrations_and_exits_zero);
async fn migrate_applies_migrations_and_exits_zero(backend: Backend) {
    let database = EmptyDatabase::new(backend).await;
    let mut launcher = Launcher::new(&database.url);

    for run in ["first", "second"] {
        let (status, output) = launcher.run(&["migrate"], Duration::from_secs(60)).await;
        assert!(status.success(), "the {run} `longhaul migrate` exited with {status}:\n{output}");
    }

    let store = longhaul_jobs::connect(&database.url).await.expect("open the migrated database");
    store.insert_jobs(&[noop_job(0, 1)]).await.expect("the jobs table exists");
    let listed =
        store.list_jobs(&Scope::Platform, &JobFilter { limit: 10, ..JobFilter::default() }).await.expect("list jobs");
    assert_eq!(listed.len(), 1);
}

/// A database with nothing in it, removed afterwards.
struct EmptyDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl EmptyDatabase {
    async fn new(backend: Backend) -> EmptyDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("longhaul.db").display());
                EmptyDatabase { url, cleanup: Cleanup::Sqlite { _dir: dir } }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("longhaul_e2e_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test PostgreSQL");
                admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create a database");
                let url = with_database(&admin_url, &name);
                EmptyDatabase { url, cleanup: Cleanup::Postgres { admin_url, name } }
            }
        }
    }
}

impl Drop for EmptyDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop cannot await, and may run inside a runtime: use a thread
            // with a runtime of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.ok()
                })
            })
            .join();
        }
    }
}
