//! The HTTP handlers, one module per area of the API.

pub mod admin;
pub mod artifacts;
pub mod events;
pub mod health;
pub mod jobs;
pub mod mail;
pub mod media;
pub mod travel;
