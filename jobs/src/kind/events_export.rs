//! `events_export`: one closed hour of a tenant's analytics events, written
//! to the data lake as Parquet. The scheduler's leader submits one per
//! tenant and hour; an admin may re-run an hour, which replaces its files.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Kind, PayloadError};
use crate::model::Lane;

pub struct EventsExport;

impl Kind for EventsExport {
    const NAME: &'static str = "events_export";
    const LANE: Lane = Lane::Data;
    const TIMEOUT: Duration = Duration::from_secs(30 * 60);
    // One job per tenant every hour: announcing each would only flood the
    // subscribers.
    const EMITS_EVENTS: bool = false;
    const ADMIN_ONLY: bool = true;
    type Payload = EventsExportPayload;

    fn check(payload: &EventsExportPayload) -> Result<(), PayloadError> {
        let hour = payload.hour;
        if hour.minute() != 0 || hour.second() != 0 || hour.nanosecond() != 0 {
            return Err(PayloadError::new(
                "payload.hour",
                "must be the start of an hour, such as 2026-12-05T08:00:00Z",
            ));
        }
        Ok(())
    }
}

/// `events_export`: the hour whose events (by the time the API received
/// them) are exported.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsExportPayload {
    /// The start of the hour, in UTC.
    pub hour: DateTime<Utc>,
}
