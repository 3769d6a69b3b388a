//! What the longhaul API and workers share: the job model, the store (with the
//! embedded queue), and the configuration they both read.

pub mod admin;
#[cfg(feature = "aws")]
mod aws;
pub mod database;
pub mod events;
pub mod imports;
pub mod inbox;
pub mod kind;
pub mod media;
pub mod model;
pub mod notify;
pub mod objects;
pub mod queue;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod travel;

pub use database::{connect, DynStore, Store};
pub use inventory;
pub use kind::{JobKind, Kind};
pub use model::{Job, Lane, NewJob, Scope, Status};
pub use store::{JobStore, StoreError};
