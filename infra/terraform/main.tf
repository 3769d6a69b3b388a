################################################################################
# longhaul on AWS
#
# One environment of longhaul: a VPC across three availability zones, an EKS
# cluster whose managed node groups span them (a general group, and a
# compute-optimised group tainted for the video lane), RDS PostgreSQL
# (Multi-AZ), one SQS queue and dead-letter queue per lane, an SNS topic for
# job events, an S3 bucket for artifacts, media and the events data lake, KMS
# keys for each kind of data, one IAM role per component (EKS Pod Identity),
# and KEDA plus the cluster autoscaler, so that workers scale on queue depth
# and nodes follow.
#
# This module has no provider blocks: envs/staging and envs/prod are the roots
# that configure the providers and the state backend, and call it with their
# sizes. The outputs are the environment a deployment needs (`api_env`,
# `worker_env`, the secrets to sync, the service accounts and roles); the
# Kubernetes manifests live in infra/k8s.
#
# Offline checks (no provider download): `bash infra/check.sh` parses every
# file here, asserts the invariants (infra/tests/test_terraform.py) and runs
# checkov. Every checkov skip is inline, next to what it skips, with its reason.
################################################################################

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# The three zones the stack spans, pinned by zone ID (the same physical zone
# in every account, unlike zone names): a closed set, so a zone AWS adds to
# the region later never moves a subnet, a node group or the database
# (checkov CKV_AWS_394).
data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "zone-id"
    values = var.availability_zone_ids
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == 3
      error_message = "longhaul runs across three availability zones; not every zone ID in availability_zone_ids is an available zone of this region."
    }
  }
}

locals {
  name       = "${var.name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # Exactly three zones: every subnet tier, both node groups and the
  # database subnet group span them.
  azs = data.aws_availability_zones.available.names

  # The lanes of longhaul (jobs/src/model.rs). Each has a queue and a DLQ,
  # a worker Deployment with its own service account and IAM role, and a
  # KEDA ScaledObject on its queue's depth. `concurrency` is the lane's
  # default LONGHAUL_CONCURRENCY, KEDA's target queue length per replica.
  #
  # longhaul sets each message's visibility to the job's lease when it
  # receives it, and extends it with every heartbeat
  # (ChangeMessageVisibility) while the job runs, so a two-hour video job
  # keeps its message without a two-hour timeout. The queue's own
  # visibility timeout below only applies to receives that set none (an
  # operator's `aws sqs receive-message`): a little above the longest step a
  # lane takes between heartbeats.
  lanes = {
    video   = { visibility_timeout_seconds = 600, concurrency = 1 }
    reports = { visibility_timeout_seconds = 300, concurrency = 4 }
    email   = { visibility_timeout_seconds = 120, concurrency = 16 }
    refresh = { visibility_timeout_seconds = 120, concurrency = 8 }
    data    = { visibility_timeout_seconds = 300, concurrency = 2 }
    default = { visibility_timeout_seconds = 60, concurrency = 64 }
  }

  # Queue names are `<queue_name_prefix><lane>` and `…<lane>-dlq`, so
  # LONGHAUL_SQS_QUEUE_PREFIX is the queues' URL up to the lane.
  queue_name_prefix = "${local.name}-"

  # Every object longhaul writes for a tenant is under
  # <prefix>/tenants/<tenant>/, which every worker and the API reach. The
  # data lake (the data lane's Parquet event exports,
  # <prefix>/lake/events/tenant=<t>/date=<d>/hour=<h>/) is beside it, not
  # inside: only the data lane writes it and the reports lane reads it
  # (iam.tf), and it has its own retention (s3.tf).
  object_key_prefix = "${var.object_store_prefix}/tenants"
  lake_key_prefix   = "${var.object_store_prefix}/lake"

  tags = merge(var.tags, {
    Project     = var.name
    Environment = var.environment
  })
}
