//! `reservation_refresh`: one shard of the active reservations, re-checked
//! against the agencies. The sweep planner submits them every interval; an
//! admin may refresh the tenant's reservations (all, or one shard) at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Kind, PayloadError};
use crate::model::Lane;

pub struct ReservationRefresh;

impl Kind for ReservationRefresh {
    const NAME: &'static str = "reservation_refresh";
    const LANE: Lane = Lane::Refresh;
    // The next sweep re-checks the shard anyway; retrying hard only piles up.
    const MAX_ATTEMPTS: i32 = 2;
    const TIMEOUT: Duration = Duration::from_secs(4 * 60);
    const ADMIN_ONLY: bool = true;
    type Payload = ReservationRefreshPayload;

    fn check(payload: &ReservationRefreshPayload) -> Result<(), PayloadError> {
        payload.shard_of().map(drop)
    }

    fn platform_field(payload: &ReservationRefreshPayload) -> Option<PayloadError> {
        // A shard naming a sweep would write into the platform's sweep
        // records (its shards' tallies, across every tenant).
        payload.sweep_id.is_some().then(|| {
            PayloadError::new(
                "payload.sweep_id",
                "is set only by the platform's sweep planner; leave it out to refresh your tenant's reservations",
            )
        })
    }
}

/// `reservation_refresh`: one shard of the active reservations.
///
/// The sweep planner sets all three. An admin may submit `{}` (every active
/// reservation of the admin's tenant) or `{"shard": i, "shards": n}` (one
/// shard of it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationRefreshPayload {
    /// The sweep this shard belongs to, whose tallies it adds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_id: Option<Uuid>,
    /// Which shard, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// Into how many shards the active set is split (1 to 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
}

impl ReservationRefreshPayload {
    /// The most shards: one per shard key.
    pub const MAX_SHARDS: u32 = 1 << 16;

    /// `(shard, shards)`: the whole set is shard 0 of 1.
    pub fn shard_of(&self) -> Result<(u32, u32), PayloadError> {
        match (self.shard, self.shards) {
            (None, None) if self.sweep_id.is_none() => Ok((0, 1)),
            (None, None) => Err(PayloadError::new("payload.shard", "required with sweep_id")),
            (Some(_), None) => Err(PayloadError::new("payload.shards", "required with shard")),
            (None, Some(_)) => Err(PayloadError::new("payload.shard", "required with shards")),
            (Some(_), Some(shards)) if shards == 0 || shards > Self::MAX_SHARDS => {
                Err(PayloadError::new("payload.shards", format!("must be between 1 and {}", Self::MAX_SHARDS)))
            }
            (Some(shard), Some(shards)) if shard >= shards => {
                Err(PayloadError::new("payload.shard", "must be less than shards"))
            }
            (Some(shard), Some(shards)) => Ok((shard, shards)),
        }
    }
}
