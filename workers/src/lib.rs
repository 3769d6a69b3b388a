//! The longhaul worker runtime and the job kinds.
//!
//! - [`runtime`]: lane pools that claim jobs, run them under a lease with a
//!   heartbeat, commit their outcomes in batches, retry with backoff, and shut
//!   down gracefully; and the leader-elected scheduler.
//! - [`kinds`]: one module per job kind, each a [`kinds::Handler`].
//! - [`agency`]: the travel agencies `reservation_refresh` asks, behind one
//!   port, with the HTTP JSON adapter.

pub mod agency;
pub mod kinds;
pub mod runtime;

pub use kinds::{Handler, JobError, Registry};
pub use runtime::{JobContext, Runtime, WorkerConfig};

pub mod fonts;
#[cfg(feature = "video")]
pub mod video;
