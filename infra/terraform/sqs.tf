################################################################################
# SQS: a queue and a dead-letter queue per lane
#
# Standard queues. longhaul sends MessageGroupId = tenant, which makes them
# fair queues (one noisy tenant does not delay the others); that needs no
# queue setting. Messages only name a job: the job row in PostgreSQL is the
# truth, so SSE with SQS-owned keys is enough here.
################################################################################

# Dead-letter queues first: each lane queue's redrive policy names its DLQ.
# longhaul moves a job's message here itself, with the job, when the job goes
# `dead`; the admin redrive reads it back (receive, delete).
resource "aws_sqs_queue" "dlq" {
  for_each = local.lanes

  name                       = "${local.queue_name_prefix}${each.key}-dlq"
  sqs_managed_sse_enabled    = true
  message_retention_seconds  = 1209600 # 14 days, the longest SQS keeps
  visibility_timeout_seconds = each.value.visibility_timeout_seconds
  receive_wait_time_seconds  = 20

  tags = merge(local.tags, { Lane = each.key })
}

resource "aws_sqs_queue" "lane" {
  for_each = local.lanes

  name                       = "${local.queue_name_prefix}${each.key}"
  sqs_managed_sse_enabled    = true
  visibility_timeout_seconds = each.value.visibility_timeout_seconds
  # Long polls of 20 s, as longhaul's receivers ask for anyway.
  receive_wait_time_seconds = 20
  # A message outlives any backoff (LONGHAUL_RETRY_MAX_SECS is an hour) by
  # far; the DLQ keeps as long, since SQS keeps a message's first enqueue
  # time when it moves it.
  message_retention_seconds = 1209600

  # A backstop 3 above longhaul's own poison limit
  # (LONGHAUL_SQS_MAX_RECEIVE_COUNT): longhaul dead-letters a message itself,
  # with its job, so that the job's status and the DLQ agree.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.sqs_max_receive_count + 3
  })

  tags = merge(local.tags, { Lane = each.key })
}

# Only the lane's own queue may dead-letter into its DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each = local.lanes

  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.lane[each.key].arn]
  })
}

# Every queue refuses requests that are not over TLS. Access itself is
# granted by the IAM roles in iam.tf (same account).
locals {
  all_queues = merge(
    { for lane, q in aws_sqs_queue.lane : lane => q },
    { for lane, q in aws_sqs_queue.dlq : "${lane}-dlq" => q },
  )
}

resource "aws_sqs_queue_policy" "tls_only" {
  for_each = local.all_queues

  queue_url = each.value.id
  policy    = data.aws_iam_policy_document.sqs_tls_only[each.key].json
}

data "aws_iam_policy_document" "sqs_tls_only" {
  for_each = local.all_queues

  statement {
    sid    = "DenyInsecureTransport"
    effect = "Deny"
    # A deny may be broad: it takes rights away.
    actions = ["sqs:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [each.value.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
