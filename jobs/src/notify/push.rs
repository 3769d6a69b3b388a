//! Pushes to phones: the port the courier's pusher sends through, and the
//! messages it sends.
//!
//! In production the port is SNS mobile push (`SnsPush`): one platform
//! application per push service (APNs for `ios`, FCM for `android`, made by
//! Terraform), one platform endpoint per device, made on the device's first
//! push and kept on its row. On embedded defaults there is no push service:
//! notifications stay in the in-app inbox.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::inbox::{Platform, PushDelivery};

/// Why a push did not go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The push service disabled the device's endpoint: its token is dead
    /// (the app was removed, or the token rotated). Pushes to it stop.
    #[error("the device's endpoint is disabled: {0}")]
    Disabled(String),
    /// The endpoint no longer exists (deleted behind our back): make it again.
    #[error("the device's endpoint does not exist: {0}")]
    NoEndpoint(String),
    /// The service refused what we sent, and will again (a token it cannot
    /// take, a platform without an application): the push is dropped.
    #[error("the push service refused it: {0}")]
    Refused(String),
    /// Anything else (throttling, the network, a 5xx): try again later.
    #[error("pushing failed: {0}")]
    Failed(String),
}

/// A push service.
#[async_trait]
pub trait PushService: Send + Sync + 'static {
    /// `sns`.
    fn backend(&self) -> &'static str;

    /// The endpoint of a device's token: made, or the one the service
    /// already has for it (enabled again, since the app just registered
    /// the token). `user_data` is kept with it for operators.
    async fn endpoint(&self, platform: Platform, token: &str, user_data: &str) -> Result<String, PushError>;

    /// Sends a message to an endpoint; the service's message id.
    async fn send(&self, endpoint: &str, message: &PushMessage) -> Result<Option<String>, PushError>;

    /// Deletes an endpoint; deleting one that is gone is not an error.
    async fn delete_endpoint(&self, endpoint: &str) -> Result<(), PushError>;
}

pub type DynPushService = Arc<dyn PushService>;

/// What a phone shows, and what the app gets to open the right screen.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    pub title: String,
    pub body: String,
    /// String values only (FCM's data takes nothing else): the
    /// notification's id and type, and the ids it is about.
    pub data: serde_json::Map<String, Value>,
}

/// The longest body pushed: APNs and FCM both cap a payload at 4 KB, and a
/// lock screen shows far less.
const BODY_MAX_CHARS: usize = 1_000;

impl PushMessage {
    pub fn of(push: &PushDelivery) -> PushMessage {
        let mut data = serde_json::Map::new();
        data.insert("notification_id".into(), Value::String(push.notification_id.to_string()));
        data.insert("type".into(), Value::String(push.kind.as_str().to_owned()));
        for key in ["reservation_id", "trip_id", "job_id"] {
            if let Some(Value::String(id)) = push.data.get(key) {
                data.insert(key.into(), Value::String(id.clone()));
            }
        }
        let body = match push.body.char_indices().nth(BODY_MAX_CHARS) {
            Some((end, _)) => format!("{}…", &push.body[..end]),
            None => push.body.clone(),
        };
        PushMessage { title: push.title.clone(), body, data }
    }

    /// The SNS message of `MessageStructure: json`: a text for any
    /// protocol, and each push service's own payload.
    pub fn sns_json(&self) -> String {
        let apns = json!({
            "aps": {"alert": {"title": self.title, "body": self.body}, "sound": "default"},
            "data": self.data,
        })
        .to_string();
        let fcm = json!({
            "notification": {"title": self.title, "body": self.body},
            "data": self.data,
        })
        .to_string();
        json!({
            "default": format!("{}: {}", self.title, self.body),
            "APNS": apns,
            "APNS_SANDBOX": apns,
            "GCM": fcm,
        })
        .to_string()
    }
}

/// The push service the environment names: SNS mobile push when a platform
/// application ARN is set (`LONGHAUL_SNS_PLATFORM_APP_IOS`,
/// `LONGHAUL_SNS_PLATFORM_APP_ANDROID`), none otherwise.
pub async fn from_env() -> Result<Option<DynPushService>, super::NotifyError> {
    let var = |name: &str| std::env::var(name).ok().map(|value| value.trim().to_owned()).filter(|v| !v.is_empty());
    let (ios, android) = (var("LONGHAUL_SNS_PLATFORM_APP_IOS"), var("LONGHAUL_SNS_PLATFORM_APP_ANDROID"));
    if ios.is_none() && android.is_none() {
        return Ok(None);
    }
    #[cfg(feature = "aws")]
    {
        let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(Some(Arc::new(super::SnsPush::new(&sdk_config, ios, android))))
    }
    #[cfg(not(feature = "aws"))]
    {
        Err(super::NotifyError("this build of longhaul has no SNS support (the `aws` feature is off)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::NotificationType;

    #[test]
    fn a_push_carries_ids_as_strings_and_each_services_payload() {
        let push = PushDelivery {
            notification_id: uuid::Uuid::nil(),
            device_id: uuid::Uuid::nil(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            platform: Platform::Ios,
            token: "a".repeat(64),
            endpoint_arn: None,
            kind: NotificationType::ReservationChanged,
            title: "Your flight changed".into(),
            body: "x".repeat(5_000),
            data: json!({"reservation_id": "r1", "changes": {"gate": {"from": "A1", "to": "B2"}}, "version": 3}),
            attempts: 1,
        };
        let message = PushMessage::of(&push);
        assert_eq!(message.body.chars().count(), BODY_MAX_CHARS + 1);
        assert!(message.data.values().all(Value::is_string), "{:?}", message.data);
        assert_eq!(message.data.get("reservation_id"), Some(&json!("r1")));
        assert!(!message.data.contains_key("changes"));
        let sns: Value = serde_json::from_str(&message.sns_json()).unwrap_or(Value::Null);
        for key in ["default", "APNS", "APNS_SANDBOX", "GCM"] {
            assert!(sns.get(key).is_some_and(Value::is_string), "{key} in {sns}");
        }
        let apns: Value = serde_json::from_str(sns["APNS"].as_str().unwrap_or_default()).unwrap_or(Value::Null);
        assert_eq!(apns["aps"]["alert"]["title"], "Your flight changed");
    }
}
