//! The API through its public router, on SQLite and on PostgreSQL.
//!
//! Each test is written once and runs on both backends (see
//! [`backend_tests!`]); PostgreSQL tests need the server named by
//! `LONGHAUL_TEST_DATABASE_URL` (default: postgres@127.0.0.1:5432).

/// Declares each `async fn name(backend) { … }` as a module `name` with two
/// tests, `name::sqlite` and `name::postgres`, so test names read like the
/// behaviour and the backend is visible in failures.
macro_rules! backend_tests {
    ($($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($backend: longhaul_jobs::testing::Backend) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run(longhaul_jobs::testing::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    run(longhaul_jobs::testing::Backend::Postgres).await
                }
            }
        )*
    };
}

mod helpers;

mod admin;
mod analytics;
mod artifacts;
mod auth;
mod bad_input;
mod dashboard;
mod events;
mod health;
mod idempotency;
mod isolation;
mod jobs;
mod jwks;
mod limits;
mod mail;
mod me;
mod media;
mod server;
mod travel;
mod uploads;
