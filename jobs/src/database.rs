//! The database as a whole: every port over one store, and the way to open
//! one from a URL.
//!
//! [`Store`] is the jobs port ([`JobStore`]) and the domains' ports
//! ([`TravelStore`], [`RefreshStore`], [`MediaStore`], [`MailStore`],
//! [`AdminStore`], [`EventStore`], [`ImportStore`],
//! [`InboxStore`]) together, which both backends implement: what a process
//! that serves the API or runs the workers holds. This module sits above
//! `store` and the domains, so that neither depends on the other.

use std::sync::Arc;

use crate::{
    admin::AdminStore,
    events::EventStore,
    imports::ImportStore,
    inbox::InboxStore,
    media::MediaStore,
    store::{redact_url, DynDispatchStore, JobStore, PgStore, QueueMode, Result, SqliteStore, StoreError},
    travel::{mail::MailStore, refresh::RefreshStore, TravelStore},
};

/// Every port of one database.
pub trait Store:
    JobStore + TravelStore + RefreshStore + MediaStore + MailStore + AdminStore + EventStore + ImportStore + InboxStore
{
}

impl<T> Store for T where
    T: JobStore
        + TravelStore
        + RefreshStore
        + MediaStore
        + MailStore
        + AdminStore
        + EventStore
        + ImportStore
        + InboxStore
{
}

/// A store shared by every task of the process.
pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names, `sqlite://path` or `postgres://…`, for the
/// embedded queue. (For SQS, [`connect_dispatch`].)
pub async fn connect(url: &str) -> Result<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect_with(url, QueueMode::Embedded).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL `{}`: expected sqlite://… or postgres://…",
            redact_url(url)
        )))
    }
}

/// Opens the PostgreSQL store a URL names in dispatch mode, for the SQS
/// queue: the store, and the same store as the dispatch port the queue is
/// built on (only PostgreSQL has a dispatch outbox).
pub async fn connect_dispatch(url: &str) -> Result<(DynStore, DynDispatchStore)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = Arc::new(PgStore::connect_with(url, QueueMode::Dispatch).await?);
        Ok((store.clone(), store))
    } else {
        Err(StoreError::Config(
            "the SQS queue needs PostgreSQL: set LONGHAUL_DATABASE_URL=postgres://…, or LONGHAUL_QUEUE=embedded".into(),
        ))
    }
}
