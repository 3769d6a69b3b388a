//! Creating a deployment's lane queues and their dead-letter queues (for
//! tests, benches and first runs; production queues come from Terraform).

use super::*;

/// How far above `max_receive_count` the queues' own redrive policy sits.
pub const REDRIVE_POLICY_MARGIN: u32 = 3;

/// Creates a queue and a dead-letter queue per lane, named
/// `{name_prefix}{lane}` and `{name_prefix}{lane}-dlq`, with a redrive policy
/// of `max_receive_count + REDRIVE_POLICY_MARGIN`, and returns their
/// configuration. For local
/// endpoints (tests, `longhaul bench`): production queues come from Terraform.
pub async fn create_lane_queues(client: &Client, name_prefix: &str, max_receive_count: u32) -> Result<SqsConfig> {
    let mut lanes = HashMap::new();
    for lane in Lane::ALL {
        count("create_queue");
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name_prefix}{lane}-dlq"))
            .send()
            .await
            .map_err(|err| backend_error("CreateQueue", err))?
            .queue_url
            .ok_or_else(|| QueueError::Backend("SQS CreateQueue returned no URL".into()))?;
        count("get_queue_attributes");
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| backend_error("GetQueueAttributes", err))?
            .attributes
            .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| QueueError::Backend("SQS returned no ARN for a dead-letter queue".into()))?;
        // A backstop above longhaul's own limit: longhaul dead-letters a
        // message itself at `max_receive_count`, with its job, so that the
        // job's status and the DLQ agree.
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count + REDRIVE_POLICY_MARGIN,
        });
        count("create_queue");
        let url = client
            .create_queue()
            .queue_name(format!("{name_prefix}{lane}"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(|err| backend_error("CreateQueue", err))?
            .queue_url
            .ok_or_else(|| QueueError::Backend("SQS CreateQueue returned no URL".into()))?;
        lanes.insert(lane, SqsLane { url, dlq_url });
    }
    Ok(SqsConfig { lanes, max_receive_count, wait: LONG_POLL })
}
