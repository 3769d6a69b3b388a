//! The longhaul worker runtime and the job kinds.
//!
//! - [`runtime`]: lane pools that claim jobs, run them under a lease with a
//!   heartbeat, commit their outcomes in batches, retry with backoff, and shut
//!   down gracefully; and the leader-elected scheduler.
//! - [`handler`]: the [`Handler`] a kind implements, handed its payload
//!   already typed, and the [`Registry`] of a process's handlers; [`context`]:
//!   what a handler gets for one attempt; [`error`]: how an attempt fails.
//! - [`kinds`]: one handler module per job kind.
//! - [`courier`]: outbox events that concern a traveler made into
//!   notifications (the in-app inbox) and pushes to their phones.
//! - [`agency`]: the travel agencies `reservation_refresh` asks, behind one
//!   port, with the HTTP JSON adapter.

pub mod agency;
pub mod context;
pub mod courier;
pub mod error;
pub mod handler;
pub mod kinds;
pub mod lake;
pub mod runtime;

pub use context::JobContext;
pub use error::{JobError, JobResult};
pub use handler::{DynHandler, Handler, Registry};
pub use runtime::{Runtime, WorkerConfig};

pub mod fonts;
#[cfg(feature = "video")]
pub mod video;
