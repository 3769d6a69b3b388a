//! `noop`: sleeps, then succeeds. For health checks, smoke tests and the
//! queue benchmarks; admins only, and never announced as events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Kind;
use crate::model::Lane;

pub struct Noop;

impl Kind for Noop {
    const NAME: &'static str = "noop";
    const LANE: Lane = Lane::Default;
    // Health checks and benchmarks would only flood subscribers.
    const EMITS_EVENTS: bool = false;
    const ADMIN_ONLY: bool = true;
    type Payload = NoopPayload;
}

/// `noop`: sleeps, then succeeds. Used for health checks and queue benchmarks.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sleep_ms: u64,
    /// Fail this many attempts with a retryable error before succeeding.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub fail_times: u32,
    /// Fail with a permanent error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_permanently: bool,
    /// Write this text as the artifact `noop.txt` through the object store:
    /// a smoke test of the worker's object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}
