//! Events to an SNS topic, ten at a time with PublishBatch.
//!
//! Each message carries `event_type` and `tenant_id` as message attributes,
//! so subscribers can filter without parsing bodies. The SDK retries
//! throttling and 5xx with backoff; entries SNS rejects stay in the outbox.

use async_trait::async_trait;
use aws_sdk_sns::{
    config::retry::RetryConfig,
    error::DisplayErrorContext,
    types::{MessageAttributeValue, PublishBatchRequestEntry},
    Client,
};

use super::{Notifier, NotifyError, OutboxEvent};

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    /// With the standard AWS configuration (`AWS_REGION`, the default
    /// credential chain, `AWS_ENDPOINT_URL`).
    pub async fn from_env(topic_arn: &str) -> SnsNotifier {
        let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        SnsNotifier::new(&sdk_config, topic_arn)
    }

    pub fn new(sdk_config: &aws_config::SdkConfig, topic_arn: &str) -> SnsNotifier {
        let config = aws_sdk_sns::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .build();
        SnsNotifier { client: Client::from_conf(config), topic_arn: topic_arn.to_owned() }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|err| NotifyError(format!("building a message attribute: {err}")))
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn backend(&self) -> &'static str {
        "sns"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<i64>, NotifyError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let body = serde_json::json!({
                "event_id": event.id,
                "type": event.event_type,
                "tenant_id": event.tenant_id,
                "data": event.payload,
            });
            entries.push(
                PublishBatchRequestEntry::builder()
                    .id(event.id.to_string())
                    .message(body.to_string())
                    .message_attributes("event_type", attribute(&event.event_type)?)
                    .message_attributes("tenant_id", attribute(&event.tenant_id)?)
                    .build()
                    .map_err(|err| NotifyError(format!("building a batch entry: {err}")))?,
            );
        }
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|err| NotifyError(format!("SNS PublishBatch: {}", DisplayErrorContext(err))))?;
        for failed in output.failed() {
            tracing::warn!(entry = failed.id(), code = failed.code(), message = ?failed.message(), "SNS rejected an event");
        }
        Ok(output.successful().iter().filter_map(|entry| entry.id()?.parse().ok()).collect())
    }
}
