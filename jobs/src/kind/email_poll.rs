//! `email_poll`: one incremental sync of a connected inbox. It runs as the
//! inbox's owner, so an admin may poll a user's inbox.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Kind, Owner};
use crate::model::Lane;

pub struct EmailPoll;

impl Kind for EmailPoll {
    const NAME: &'static str = "email_poll";
    const LANE: Lane = Lane::Email;
    const TIMEOUT: Duration = Duration::from_secs(5 * 60);
    type Payload = EmailPollPayload;

    fn owner(payload: &EmailPollPayload) -> Owner {
        Owner::MailAccount(payload.account_id)
    }
}

/// `email_poll`: sync one connected inbox.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailPollPayload {
    /// The mail account (`/v1/mail/accounts`).
    pub account_id: Uuid,
}
