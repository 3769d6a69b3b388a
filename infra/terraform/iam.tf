################################################################################
# IAM: one role per component, assumed through EKS Pod Identity
#
# Each Kubernetes service account below has its own role, and each role only
# the actions its component performs, on the exact resources it touches:
#
#   api                 readiness (queue attributes, HeadBucket), presigned
#                       GET/PUT and media deletes under tenants/, the admin
#                       redrive (receive and delete on the DLQs)
#   worker-<lane>       receives from its own lane; sends the dispatch outbox
#                       (any lane, and dead jobs to the DLQs); reads and
#                       writes objects under tenants/; publishes events
#   worker-data         also lists, reads, writes and deletes the data lake
#                       (lake/), a second inline policy
#   worker-reports      also lists and reads the data lake (funnel reports)
#   keda-operator       queue depth of the lane queues
#   cluster-autoscaler  resizes this cluster's node groups only
#   external-secrets    reads the database and LONGHAUL_SECRET_KEYS secrets
#
# No policy grants a wildcard action, and KMS permissions are on the one key
# a role needs, only through the service that uses it (kms:ViaService).
################################################################################

locals {
  lane_queue_arns = [for lane in keys(local.lanes) : aws_sqs_queue.lane[lane].arn]
  dlq_arns        = [for lane in keys(local.lanes) : aws_sqs_queue.dlq[lane].arn]

  tenant_objects_arn = "${aws_s3_bucket.artifacts.arn}/${local.object_key_prefix}/*"
  lake_objects_arn   = "${aws_s3_bucket.artifacts.arn}/${local.lake_key_prefix}/*"

  # The service accounts that the manifests in infra/k8s use.
  pod_identities = merge(
    {
      api = { namespace = var.app_namespace, service_account = "longhaul-api" }
    },
    {
      for lane in keys(local.lanes) : "worker-${lane}" => {
        namespace       = var.app_namespace
        service_account = "longhaul-worker-${lane}"
      }
    },
    {
      keda-operator      = { namespace = "keda", service_account = "keda-operator" }
      cluster-autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler" }
      external-secrets   = { namespace = var.external_secrets_namespace, service_account = "external-secrets" }
    },
  )

  pod_identity_policies = merge(
    {
      api = data.aws_iam_policy_document.api.json
    },
    {
      for lane in keys(local.lanes) : "worker-${lane}" => data.aws_iam_policy_document.worker[lane].json
    },
    {
      keda-operator      = data.aws_iam_policy_document.keda_operator.json
      cluster-autoscaler = data.aws_iam_policy_document.cluster_autoscaler.json
      external-secrets   = data.aws_iam_policy_document.external_secrets.json
    },
  )

  # The data lake is outside tenants/, so no policy above reaches it: these
  # two roles get a second inline policy for it, and no other role does (the
  # API neither).
  lake_policies = {
    worker-data    = data.aws_iam_policy_document.lake_read_write.json
    worker-reports = data.aws_iam_policy_document.lake_read.json
  }
}

################################################################################
# Roles and their Pod Identity associations
################################################################################

# Only EKS Pod Identity may assume a role, and only for its own service
# account in this cluster: Pod Identity passes the cluster, namespace and
# service account as session tags (hence sts:TagSession), which the trust
# policy matches, so another association made by mistake gets nothing.
data "aws_iam_policy_document" "pod_identity_trust" {
  for_each = local.pod_identities

  statement {
    sid     = "EksPodIdentity"
    effect  = "Allow"
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-arn"
      values   = [module.eks.cluster_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [each.value.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [each.value.service_account]
    }
  }
}

resource "aws_iam_role" "pod_identity" {
  for_each = local.pod_identities

  name                 = "${local.name}-${each.key}"
  description          = "${local.name}: ${each.value.namespace}/${each.value.service_account} (EKS Pod Identity)"
  assume_role_policy   = data.aws_iam_policy_document.pod_identity_trust[each.key].json
  max_session_duration = 3600

  tags = merge(local.tags, { Component = each.key })
}

resource "aws_iam_role_policy" "pod_identity" {
  for_each = local.pod_identities

  name   = each.key
  role   = aws_iam_role.pod_identity[each.key].id
  policy = local.pod_identity_policies[each.key]
}

resource "aws_iam_role_policy" "lake" {
  for_each = local.lake_policies

  name   = "${each.key}-lake"
  role   = aws_iam_role.pod_identity[each.key].id
  policy = each.value
}

resource "aws_eks_pod_identity_association" "this" {
  for_each = local.pod_identities

  cluster_name    = module.eks.cluster_name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.pod_identity[each.key].arn

  tags = merge(local.tags, { Component = each.key })
}

################################################################################
# api
################################################################################

data "aws_iam_policy_document" "api" {
  # /readyz and start-up check that every lane queue answers.
  statement {
    sid       = "QueueReadiness"
    effect    = "Allow"
    actions   = ["sqs:GetQueueAttributes"]
    resources = local.lane_queue_arns
  }

  # POST /v1/admin/lanes/{lane}/redrive drains the dead letters of the
  # requeued jobs by hand, and hides the ones it keeps while it works. The
  # requeued jobs go out through the dispatch outbox, which the workers send:
  # the API itself sends no message.
  statement {
    sid    = "RedriveDeadLetters"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = local.dlq_arns
  }

  # HeadBucket (start-up and /readyz) needs s3:ListBucket; a listing by
  # prefix stays inside the tenants' keys.
  statement {
    sid       = "ObjectStoreReadiness"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = ["${local.object_key_prefix}/*"]
    }
  }

  # Presigned GETs (artifacts, media) and PUTs (media uploads) are made with
  # these rights; media deletes go through the API.
  statement {
    sid    = "TenantObjects"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
    ]
    resources = [local.tenant_objects_arn]
  }

  statement {
    sid    = "ArtifactsKeyThroughS3"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this["artifacts"].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

################################################################################
# worker-<lane>
################################################################################

data "aws_iam_policy_document" "worker" {
  for_each = local.lanes

  # Its own lane: receive, extend the visibility of running jobs
  # (heartbeats, ChangeMessageVisibilityBatch), delete after the commit.
  statement {
    sid    = "ConsumeOwnLane"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
    ]
    resources = [aws_sqs_queue.lane[each.key].arn]
  }

  # Every worker runs a dispatcher that sends the dispatch outbox, whose rows
  # are for any lane, and sends a dead job's message to its lane's DLQ.
  statement {
    sid       = "DispatchToAnyLane"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = concat(local.lane_queue_arns, local.dlq_arns)
  }

  # /readyz and start-up check that every lane queue answers.
  statement {
    sid       = "QueueReadiness"
    effect    = "Allow"
    actions   = ["sqs:GetQueueAttributes"]
    resources = local.lane_queue_arns
  }

  statement {
    sid       = "ObjectStoreReadiness"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = ["${local.object_key_prefix}/*"]
    }
  }

  # Inputs (media) are read, artifacts written, large ones as multipart
  # uploads of 8 MiB parts (PutObject covers create, upload part and
  # complete), aborted on failure.
  statement {
    sid    = "TenantObjects"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.tenant_objects_arn]
  }

  statement {
    sid    = "ArtifactsKeyThroughS3"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this["artifacts"].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  # Every worker runs an event publisher (PublishBatch is sns:Publish).
  statement {
    sid       = "PublishEvents"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.events.arn]
  }

  # Every worker runs the pusher: it makes, updates and deletes the platform
  # endpoints of travelers' devices, and publishes to them. Scoped by name to
  # this stack's platform applications (sns.tf), whether or not they exist.
  statement {
    sid    = "MobilePush"
    effect = "Allow"
    actions = [
      "sns:CreatePlatformEndpoint",
      "sns:SetEndpointAttributes",
      "sns:DeleteEndpoint",
      "sns:Publish",
    ]
    resources = local.push_resource_arns
  }

  statement {
    sid    = "EventsKeyThroughSns"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this["events"].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com"]
    }
  }
}

################################################################################
# The data lake: worker-data writes it, worker-reports reads it
################################################################################

# events_export writes a partition's Parquet files and its _manifest.json
# (large files as multipart uploads, aborted on failure), lists and reads a
# partition to rewrite it (a personal-data deletion), and deletes the files
# a rewrite leaves over. The artifacts key is in the worker policy already.
data "aws_iam_policy_document" "lake_read_write" {
  # Everything worker-reports may do (list and read), and the writes.
  source_policy_documents = [data.aws_iam_policy_document.lake_read.json]

  statement {
    sid    = "WriteLake"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.lake_objects_arn]
  }
}

# Funnel reports (report_build) read the events from the lake: manifests and
# Parquet files, found by listing partitions. Nothing else.
data "aws_iam_policy_document" "lake_read" {
  statement {
    sid       = "ListLake"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lake_key_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadLake"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.lake_objects_arn]
  }
}

################################################################################
# keda-operator
################################################################################

# The aws-sqs-queue scaler reads ApproximateNumberOfMessages(+NotVisible).
# TriggerAuthentications use `podIdentity: { provider: aws }`, whose identity
# is the operator's.
data "aws_iam_policy_document" "keda_operator" {
  statement {
    sid       = "QueueDepth"
    effect    = "Allow"
    actions   = ["sqs:GetQueueAttributes"]
    resources = local.lane_queue_arns
  }
}

################################################################################
# cluster-autoscaler
################################################################################

data "aws_iam_policy_document" "cluster_autoscaler" {
  # Discovery. These Describe and Get actions have no resource-level
  # permissions: AWS only accepts "*" for them.
  statement {
    sid    = "DiscoverNodeGroups"
    effect = "Allow"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  # Labels and taints of this cluster's node groups, to scale one from zero.
  statement {
    sid       = "DescribeOwnNodeGroups"
    effect    = "Allow"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${local.name}/*/*"]
  }

  # Resizing: only the managed node groups' Auto Scaling groups, and only
  # those EKS tagged as this cluster's.
  statement {
    sid    = "ResizeOwnNodeGroups"
    effect = "Allow"
    actions = [
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    resources = ["arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/eks-*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${local.name}"
      values   = ["owned"]
    }
  }
}

################################################################################
# external-secrets
################################################################################

# Copies the database's master secret (to compose LONGHAUL_DATABASE_URL) and
# LONGHAUL_SECRET_KEYS into Kubernetes Secrets.
data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid    = "ReadLonghaulSecrets"
    effect = "Allow"
    actions = [
      "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret",
    ]
    resources = [
      aws_db_instance.this.master_user_secret[0].secret_arn,
      aws_secretsmanager_secret.secret_keys.arn,
    ]
  }

  statement {
    sid       = "SecretsKeyThroughSecretsManager"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this["secrets"].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}
