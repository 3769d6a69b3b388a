//! SNS mobile push: platform endpoints made per device token, and messages
//! published to them (`MessageStructure: json`, one payload per service).
//!
//! Making an endpoint follows AWS's advice for token management: create it;
//! if SNS says one already exists for the token with other attributes (it
//! was disabled, or made with other user data), take that endpoint's ARN
//! from the error and set its attributes (token, enabled) instead.

use std::collections::HashMap;

use async_trait::async_trait;
use std::time::Duration;

use aws_sdk_sns::{
    config::{retry::RetryConfig, timeout::TimeoutConfig},
    error::{DisplayErrorContext, ProvideErrorMetadata},
    Client,
};

use super::push::{PushError, PushMessage, PushService};
use crate::inbox::Platform;

pub struct SnsPush {
    client: Client,
    ios: Option<String>,
    android: Option<String>,
}

impl SnsPush {
    /// With the platform applications' ARNs (APNs for iOS, FCM for Android).
    /// Each call is bounded: 3 s to connect, 10 s an attempt, 30 s in all
    /// (a push that does not go in time is retried later by the pusher).
    pub fn new(sdk_config: &aws_config::SdkConfig, ios: Option<String>, android: Option<String>) -> SnsPush {
        let config = aws_sdk_sns::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        SnsPush { client: Client::from_conf(config), ios, android }
    }

    fn application(&self, platform: Platform) -> Result<&str, PushError> {
        match platform {
            Platform::Ios => self.ios.as_deref(),
            Platform::Android => self.android.as_deref(),
        }
        .ok_or_else(|| PushError::Refused(format!("no SNS platform application is configured for {platform}")))
    }
}

/// The ARN in SNS's "Endpoint arn:aws:sns:… already exists with the same
/// Token, but different attributes."
fn existing_endpoint(message: &str) -> Option<&str> {
    let start = message.find("arn:")?;
    let rest = &message[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// An SDK error as a [`PushError`], by SNS's error code.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    err: aws_sdk_sns::error::SdkError<E, R>,
) -> PushError {
    let code = err.code().map(str::to_owned);
    let text = DisplayErrorContext(&err).to_string();
    match code.as_deref() {
        Some("EndpointDisabled") => PushError::Disabled(text),
        Some("NotFound") => PushError::NoEndpoint(text),
        Some("InvalidParameter" | "InvalidParameterValue" | "PlatformApplicationDisabled" | "AuthorizationError") => {
            PushError::Refused(text)
        }
        _ => PushError::Failed(text),
    }
}

#[async_trait]
impl PushService for SnsPush {
    fn backend(&self) -> &'static str {
        "sns"
    }

    async fn endpoint(&self, platform: Platform, token: &str, user_data: &str) -> Result<String, PushError> {
        let application = self.application(platform)?;
        let created = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(token)
            .custom_user_data(user_data)
            .send()
            .await;
        match created {
            Ok(output) => output
                .endpoint_arn()
                .map(str::to_owned)
                .ok_or_else(|| PushError::Failed("SNS made an endpoint without an ARN".into())),
            Err(err) => {
                let message = err.message().unwrap_or_default().to_owned();
                let Some(arn) = existing_endpoint(&message).map(str::to_owned) else { return Err(classify(err)) };
                let attributes = HashMap::from([
                    ("Token".to_owned(), token.to_owned()),
                    ("Enabled".to_owned(), "true".to_owned()),
                    ("CustomUserData".to_owned(), user_data.to_owned()),
                ]);
                self.client
                    .set_endpoint_attributes()
                    .endpoint_arn(&arn)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(arn)
            }
        }
    }

    async fn send(&self, endpoint: &str, message: &PushMessage) -> Result<Option<String>, PushError> {
        let output = self
            .client
            .publish()
            .target_arn(endpoint)
            .message_structure("json")
            .message(message.sns_json())
            .send()
            .await
            .map_err(classify)?;
        Ok(output.message_id().map(str::to_owned))
    }

    async fn delete_endpoint(&self, endpoint: &str) -> Result<(), PushError> {
        match self.client.delete_endpoint().endpoint_arn(endpoint).send().await.map_err(classify) {
            Ok(_) | Err(PushError::NoEndpoint(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_existing_endpoint_is_read_from_snss_message() {
        let message = "Invalid parameter: Token Reason: Endpoint arn:aws:sns:us-east-1:123456789012:endpoint/APNS/app/\
                       0f1e2d3c already exists with the same Token, but different attributes.";
        assert_eq!(existing_endpoint(message), Some("arn:aws:sns:us-east-1:123456789012:endpoint/APNS/app/0f1e2d3c"));
        assert_eq!(existing_endpoint("Invalid parameter: Token"), None);
    }
}
