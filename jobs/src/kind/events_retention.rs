//! `events_retention`: a tenant's events older than its retention (the
//! catalogue's `retention_days`, two years at most) leave the lake and the
//! database. The scheduler's leader submits one per tenant a day; what is
//! removed is counted in the result and written to the audit log.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Kind;
use crate::model::Lane;

pub struct EventsRetention;

impl Kind for EventsRetention {
    const NAME: &'static str = "events_retention";
    const LANE: Lane = Lane::Data;
    const TIMEOUT: Duration = Duration::from_secs(30 * 60);
    const EMITS_EVENTS: bool = false;
    const ADMIN_ONLY: bool = true;
    type Payload = EventsRetentionPayload;
}

/// `events_retention`: nothing to say; the tenant's catalogue says how long.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRetentionPayload {}
