################################################################################
# SNS: job events
#
# Every worker publishes job.succeeded, job.failed, job.dead and
# reservation.changed here (PublishBatch), with `event_type` and `tenant_id`
# message attributes for subscribers' filter policies. Subscriptions belong
# to the consumers, not to this stack.
################################################################################

resource "aws_sns_topic" "events" {
  name              = "${local.name}-events"
  kms_master_key_id = aws_kms_key.this["events"].arn

  tags = local.tags
}

# Publishing is granted to the worker roles by IAM (iam.tf); the topic only
# refuses what does not come over TLS.
resource "aws_sns_topic_policy" "events" {
  arn    = aws_sns_topic.events.arn
  policy = data.aws_iam_policy_document.sns_events.json
}

data "aws_iam_policy_document" "sns_events" {
  statement {
    sid    = "DenyInsecureTransport"
    effect = "Deny"
    # A deny may be broad: it takes rights away.
    actions = ["sns:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_sns_topic.events.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
