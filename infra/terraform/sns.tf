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

################################################################################
# SNS mobile push: travelers' phones
#
# One platform application per push service, each made only when its
# credentials are given: APNs (token-based, a .p8 signing key) for iOS, FCM
# (a service account's JSON key) for Android. The workers' pusher makes one
# platform endpoint per registered device token under them, publishes to it,
# and deletes endpoints whose token died (see workers/src/courier/push.rs).
# The credentials are sensitive variables: they are kept in the state, which
# is encrypted, and never in a tfvars file under version control.
################################################################################

resource "aws_sns_platform_application" "ios" {
  count = var.push_ios == null ? 0 : 1

  name                     = "${local.name}-ios"
  platform                 = var.push_ios.sandbox ? "APNS_SANDBOX" : "APNS"
  platform_credential      = var.apns_signing_key
  platform_principal       = var.push_ios.key_id
  apple_platform_team_id   = var.push_ios.team_id
  apple_platform_bundle_id = var.push_ios.bundle_id
}

resource "aws_sns_platform_application" "android" {
  count = var.push_android ? 1 : 0

  name                = "${local.name}-android"
  platform            = "GCM"
  platform_credential = var.fcm_service_account_json
}

locals {
  # The platform applications that exist, and the worker variables that
  # name them (none: travelers' notifications stay in the in-app inbox).
  push_env = merge(
    { for app in aws_sns_platform_application.ios : "LONGHAUL_SNS_PLATFORM_APP_IOS" => app.arn },
    { for app in aws_sns_platform_application.android : "LONGHAUL_SNS_PLATFORM_APP_ANDROID" => app.arn },
  )
  # What the pusher may touch: this stack's applications (any push
  # service) and their endpoints.
  push_resource_arns = [
    "arn:${local.partition}:sns:${local.region}:${local.account_id}:app/*/${local.name}-*",
    "arn:${local.partition}:sns:${local.region}:${local.account_id}:endpoint/*/${local.name}-*/*",
  ]
}
