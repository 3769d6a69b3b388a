//! The HTTP handlers, one module per area of the API.

pub mod admin;
pub mod artifacts;
pub mod events;
pub(crate) mod files;
pub mod health;
pub mod jobs;
pub mod mail;
pub mod me;
pub mod media;
pub mod travel;
pub mod uploads;
