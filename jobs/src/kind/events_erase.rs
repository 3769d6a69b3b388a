//! `events_erase`: the lake rewritten without the users who asked that
//! their events be deleted (`DELETE /v1/me/events`, or an admin for them).
//! Their raw rows went with the request; this job removes their rows from
//! every Parquet file of the tenant's lake, for each request still pending
//! (so one run honours every request made before it).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{EventsExport, Kind};
use crate::model::Lane;

pub struct EventsErase;

impl Kind for EventsErase {
    const NAME: &'static str = "events_erase";
    const LANE: Lane = Lane::Data;
    const TIMEOUT: Duration = Duration::from_secs(60 * 60);
    // A deletion must not be lost to a busy lake (each turn it waits for
    // another job of the tenant's lake is an attempt).
    const MAX_ATTEMPTS: i32 = 10;
    const EMITS_EVENTS: bool = false;
    const ADMIN_ONLY: bool = true;
    type Payload = EventsErasePayload;
}

impl EventsErase {
    /// How long after a request its rewrite starts: past the longest an
    /// export that read the user's rows before the request may still run,
    /// so the rewrite sees every file such an export writes.
    pub const DELAY: Duration = Duration::from_secs(EventsExport::TIMEOUT.as_secs() + 5 * 60);
}

/// `events_erase`: the deletion request that asked for it (every pending
/// request of the tenant is honoured by the run).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsErasePayload {
    pub request_id: Uuid,
}
