################################################################################
# What a deployment needs
#
# `api_env` and `worker_env` are the plain environment of the two
# containers, by variable name (README, Configuration). The two secret
# variables come from Secrets Manager through the External Secrets Operator
# (`secret_env`). The rest names what the manifests refer to: service
# accounts, node placement of the video lane, the queues KEDA watches.
################################################################################

locals {
  # `https://sqs.<region>.amazonaws.com/<account>/<name>-<environment>-`: the
  # URL of any lane queue, less the lane.
  sqs_queue_url_prefix = trimsuffix(aws_sqs_queue.lane["default"].url, "default")

  common_env = {
    AWS_REGION                     = local.region
    LONGHAUL_QUEUE                 = "sqs"
    LONGHAUL_SQS_QUEUE_PREFIX      = local.sqs_queue_url_prefix
    LONGHAUL_SQS_MAX_RECEIVE_COUNT = tostring(var.sqs_max_receive_count)
    LONGHAUL_OBJECT_STORE          = "s3://${aws_s3_bucket.artifacts.bucket}/${var.object_store_prefix}"
    LONGHAUL_S3_KMS_KEY_ID         = aws_kms_key.this["artifacts"].arn
  }

  # The same queues one by one (LONGHAUL_SQS_QUEUE_URL_<LANE>), for the
  # manifests that copy them into KEDA's triggers.
  lane_queue_url_env = {
    for lane in keys(local.lanes) : "LONGHAUL_SQS_QUEUE_URL_${upper(lane)}" => aws_sqs_queue.lane[lane].url
  }

  api_env = merge(local.common_env, local.lane_queue_url_env, {
    LONGHAUL_JWKS_URL = "https://cognito-idp.${local.region}.amazonaws.com/${var.cognito_user_pool_id}/.well-known/jwks.json"
  })
  worker_env = merge(local.common_env, local.lane_queue_url_env, local.push_env, {
    LONGHAUL_SNS_TOPIC_ARN = aws_sns_topic.events.arn
  })
}

output "aws_region" {
  description = "The Region of every resource (AWS_REGION)."
  value       = local.region
}

output "api_env" {
  description = "The environment of the `longhaul api` container, besides secret_env."
  value       = local.api_env
}

output "worker_env" {
  description = "The environment of every `longhaul worker` container (each Deployment adds LONGHAUL_LANES=<its lane>), besides secret_env."
  value       = local.worker_env
}

output "environment" {
  description = "api_env and worker_env in one map: the data of the ConfigMap that every longhaul container reads in infra/k8s (longhaul-environment). Each variable only matters to the containers that use it."
  value       = merge(local.api_env, local.worker_env)
}

output "secret_env" {
  description = "The secret variables and where they come from. LONGHAUL_DATABASE_URL is composed from the RDS-managed master secret (JSON with `username` and `password`, rotated by RDS) by an ExternalSecret template; LONGHAUL_SECRET_KEYS is the value of its secret as it is. The API and the email workers need LONGHAUL_SECRET_KEYS; every container needs LONGHAUL_DATABASE_URL."
  value = {
    LONGHAUL_DATABASE_URL = {
      secret_arn = aws_db_instance.this.master_user_secret[0].secret_arn
      # ExternalSecret target template (Go template over the secret's JSON
      # keys); the password is URL-encoded, since it may hold any character.
      template = "postgres://{{ .username | urlquery }}:{{ .password | urlquery }}@${aws_db_instance.this.address}:${aws_db_instance.this.port}/${aws_db_instance.this.db_name}?sslmode=require"
    }
    LONGHAUL_SECRET_KEYS = {
      secret_arn = aws_secretsmanager_secret.secret_keys.arn
    }
  }
}

output "database" {
  description = "RDS PostgreSQL: endpoint, port, database, master user and the ARN of the master secret that RDS manages. Connections must use TLS (rds.force_ssl)."
  value = {
    address                = aws_db_instance.this.address
    port                   = aws_db_instance.this.port
    name                   = aws_db_instance.this.db_name
    username               = aws_db_instance.this.username
    master_user_secret_arn = aws_db_instance.this.master_user_secret[0].secret_arn
  }
}

output "sqs_queue_prefix" {
  description = "LONGHAUL_SQS_QUEUE_PREFIX: lane L's queue is <prefix>L and its DLQ <prefix>L-dlq."
  value       = local.sqs_queue_url_prefix
}

output "sqs_queues" {
  description = "Per lane: the queue's and the DLQ's URL and ARN. KEDA's aws-sqs-queue trigger of lane L takes queue_url."
  value = {
    for lane in keys(local.lanes) : lane => {
      queue_url = aws_sqs_queue.lane[lane].url
      queue_arn = aws_sqs_queue.lane[lane].arn
      dlq_url   = aws_sqs_queue.dlq[lane].url
      dlq_arn   = aws_sqs_queue.dlq[lane].arn
    }
  }
}

output "object_store" {
  description = "LONGHAUL_OBJECT_STORE, its bucket, LONGHAUL_S3_KMS_KEY_ID, and the key prefix of the events data lake in that bucket (kept lake_retention_days)."
  value = {
    url                 = local.common_env.LONGHAUL_OBJECT_STORE
    bucket              = aws_s3_bucket.artifacts.bucket
    kms_key_id          = aws_kms_key.this["artifacts"].arn
    lake_events_prefix  = "${local.lake_key_prefix}/events/"
    lake_retention_days = var.lake_retention_days
  }
}

output "sns_topic_arn" {
  description = "LONGHAUL_SNS_TOPIC_ARN: the job events topic."
  value       = aws_sns_topic.events.arn
}

output "secret_keys_secret_arn" {
  description = "The Secrets Manager secret of LONGHAUL_SECRET_KEYS (its value is set by hand; see secrets.tf)."
  value       = aws_secretsmanager_secret.secret_keys.arn
}

output "service_accounts" {
  description = "Per component: the Kubernetes namespace and service account the manifests must use, and the IAM role EKS Pod Identity gives it. Workers: `worker-<lane>`."
  value = {
    for component, identity in local.pod_identities : component => {
      namespace       = identity.namespace
      service_account = identity.service_account
      role_arn        = aws_iam_role.pod_identity[component].arn
    }
  }
}

output "video_node_placement" {
  description = "What a video worker's pod spec needs to run on the compute-optimised group: this nodeSelector and this toleration."
  value = {
    node_selector = { "longhaul.dev/lane" = "video" }
    toleration    = { key = "lane", operator = "Equal", value = "video", effect = "NoSchedule" }
  }
}

output "keda" {
  description = "For the ScaledObjects: KEDA's namespace, the TriggerAuthentication's podIdentity provider (`aws`: the operator's own Pod Identity role), and per lane the queue to watch and the target queue length per replica (the lane's default LONGHAUL_CONCURRENCY, so that one replica has one message per job slot)."
  value = {
    namespace                = helm_release.keda.namespace
    chart_version            = helm_release.keda.version
    operator_service_account = local.pod_identities["keda-operator"].service_account
    operator_role_arn        = aws_iam_role.pod_identity["keda-operator"].arn
    pod_identity_provider    = "aws"
    aws_region               = local.region
    lanes = {
      for lane, settings in local.lanes : lane => {
        queue_url    = aws_sqs_queue.lane[lane].url
        queue_length = settings.concurrency
      }
    }
  }
}

output "cluster_name" {
  description = "The EKS cluster (aws eks update-kubeconfig --name <cluster_name>)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "The EKS API server endpoint."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "The EKS API server's CA certificate, base64."
  value       = module.eks.cluster_certificate_authority_data
}

output "vpc_id" {
  description = "The VPC."
  value       = module.vpc.vpc_id
}

output "availability_zones" {
  description = "The three zones everything spans."
  value       = local.azs
}
