################################################################################
# Identity
################################################################################

variable "name" {
  description = "Prefix of every resource name. Resources are named `<name>-<environment>…`; lane queues are `<name>-<environment>-<lane>` and `<name>-<environment>-<lane>-dlq`."
  type        = string
  default     = "longhaul"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "The environment this stack is: `staging` or `prod`. It is part of every name, and the S3 artifacts bucket's."
  type        = string

  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod."
  }
}

variable "tags" {
  description = "Tags added to every resource that the modules create (the providers' default_tags, set in envs/*, cover the plain resources)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "The VPC's CIDR block, a /16: three /20 private subnets (nodes and pods, VPC CNI), three /24 public subnets (load balancers, NAT) and three /24 database subnets are carved from it, one of each per availability zone."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && endswith(var.vpc_cidr, "/16")
    error_message = "vpc_cidr must be an IPv4 /16."
  }
}

variable "availability_zone_ids" {
  description = "The three availability zones the stack spans, by zone ID (`euw1-az1`, not `eu-west-1a`: IDs name the same physical zone in every account). Pinned, so that a zone AWS adds to the region never changes where anything runs; `aws ec2 describe-availability-zones --query 'AvailabilityZones[].ZoneId'` lists a region's."
  type        = list(string)

  validation {
    condition     = length(var.availability_zone_ids) == 3 && length(distinct(var.availability_zone_ids)) == 3 && alltrue([for id in var.availability_zone_ids : can(regex("^[a-z]{2,6}[0-9]+-az[0-9]+$", id))])
    error_message = "availability_zone_ids must be three distinct zone IDs of the region, such as euw1-az1."
  }
}

################################################################################
# EKS
################################################################################

variable "kubernetes_version" {
  description = "The EKS control plane's Kubernetes `<major>.<minor>`. Upgrade one minor at a time, and bump cluster_autoscaler_image_tag to the same minor."
  type        = string
  default     = "1.35"
}

variable "endpoint_public_access" {
  description = "Whether the EKS API server also has a public endpoint (limited to endpoint_public_access_cidrs). Off, it is reachable only from inside the VPC (a VPN, a bastion or CI runners there)."
  type        = bool
  default     = false
}

variable "endpoint_public_access_cidrs" {
  description = "The CIDR blocks allowed to reach the public EKS endpoint when endpoint_public_access is on. Never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.endpoint_public_access_cidrs, "0.0.0.0/0")
    error_message = "endpoint_public_access_cidrs must not open the API server to the whole internet."
  }
}

variable "cluster_admin_role_arns" {
  description = "IAM roles (SREs, CI) given cluster-admin through EKS access entries, in addition to the identity that creates the cluster."
  type        = list(string)
  default     = []
}

variable "general_nodes" {
  description = "The general-purpose managed node group (api, email, refresh, reports, data and default workers, KEDA, system pods), spread across the three private subnets."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
  default = {
    instance_types = ["m7i.large", "m6i.large"]
    min_size       = 3
    max_size       = 9
    desired_size   = 3
  }

  validation {
    condition     = var.general_nodes.min_size >= 3 && var.general_nodes.min_size <= var.general_nodes.desired_size && var.general_nodes.desired_size <= var.general_nodes.max_size
    error_message = "general_nodes needs min_size >= 3 (one node per availability zone) and min_size <= desired_size <= max_size."
  }
}

variable "video_nodes" {
  description = "The compute-optimised managed node group for the video lane (tainted lane=video:NoSchedule, labelled lane=video), spread across the three private subnets. min_size may be 0: the cluster autoscaler adds nodes when KEDA scales video workers up."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gib  = number
  })
  default = {
    instance_types = ["c7i.2xlarge", "c6i.2xlarge"]
    min_size       = 0
    max_size       = 6
    desired_size   = 0
    disk_size_gib  = 100
  }

  validation {
    condition     = alltrue([for t in var.video_nodes.instance_types : can(regex("^c[0-9]+[a-z]*\\.", t))])
    error_message = "video_nodes.instance_types must be compute-optimised (c-family) instance types."
  }
}

variable "keda_chart_version" {
  description = "The kedacore/keda Helm chart version (KEDA itself has the same version)."
  type        = string
  default     = "2.20.2"
}

variable "cluster_autoscaler_chart_version" {
  description = "The kubernetes/autoscaler cluster-autoscaler Helm chart version."
  type        = string
  default     = "9.59.0"
}

variable "cluster_autoscaler_image_tag" {
  description = "The cluster-autoscaler image tag: its minor must be the cluster's Kubernetes minor."
  type        = string
  default     = "v1.35.2"
}

################################################################################
# Data
################################################################################

variable "db_engine_version" {
  description = "The RDS PostgreSQL engine version: a major (`17`, the latest minor, upgraded in the maintenance window) or `major.minor`."
  type        = string
  default     = "17"
}

variable "db_instance_class" {
  description = "The RDS instance class (Multi-AZ: the standby is the same class)."
  type        = string
  default     = "db.m7g.large"
}

variable "db_allocated_storage_gib" {
  description = "The database's initial gp3 storage, in GiB."
  type        = number
  default     = 100
}

variable "db_max_allocated_storage_gib" {
  description = "The ceiling of storage autoscaling, in GiB."
  type        = number
  default     = 500
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 7 and 35."
  }
}

variable "db_name" {
  description = "The database longhaul uses."
  type        = string
  default     = "longhaul"
}

variable "db_username" {
  description = "The RDS master user, whose password RDS keeps in Secrets Manager (manage_master_user_password)."
  type        = string
  default     = "longhaul"
}

variable "sqs_max_receive_count" {
  description = "LONGHAUL_SQS_MAX_RECEIVE_COUNT: deliveries of one message before longhaul itself dead-letters the job. The queues' redrive policy sits 3 above it, as a backstop (as in the app's own queue set-up)."
  type        = number
  default     = 5

  validation {
    condition     = var.sqs_max_receive_count >= 1 && var.sqs_max_receive_count <= 997
    error_message = "sqs_max_receive_count must be between 1 and 997 (the redrive policy's maxReceiveCount, 3 above it, is at most 1000)."
  }
}

variable "object_store_prefix" {
  description = "The key prefix of LONGHAUL_OBJECT_STORE (s3://<bucket>/<prefix>); longhaul writes tenants' objects under <prefix>/tenants/<tenant>/ and the events data lake under <prefix>/lake/ (the data lane only; the reports lane reads it), and the IAM policies allow no other key."
  type        = string
  default     = "longhaul"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.object_store_prefix))
    error_message = "object_store_prefix must be one path segment of lower-case letters, digits and hyphens."
  }
}

variable "artifact_noncurrent_version_days" {
  description = "Days an overwritten or deleted artifact's previous version is kept (recovery from a bad write or delete) before it expires. Not the data lake's: its previous versions go after one day (lake_retention_days)."
  type        = number
  default     = 30
}

variable "lake_retention_days" {
  description = "Days a data lake file (<prefix>/lake/events/…: Parquet event exports and their _manifest.json) is kept after it was last written, then expired by the bucket's lifecycle rule. Its previous versions (a file rewritten by a personal-data deletion) go one day after they are replaced, so that deleted personal data does not linger in old versions."
  type        = number
  default     = 730

  validation {
    condition     = var.lake_retention_days > 0 && floor(var.lake_retention_days) == var.lake_retention_days
    error_message = "lake_retention_days must be a whole number of days, above 0."
  }
}

################################################################################
# Auth
################################################################################

variable "cognito_user_pool_id" {
  description = "The Cognito user pool that issues users' JWTs (not created here: it is shared with the mobile app). LONGHAUL_JWKS_URL is its JWKS, in this stack's region."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]_[A-Za-z0-9]+$", var.cognito_user_pool_id))
    error_message = "cognito_user_pool_id must look like eu-west-1_AbCdEf123."
  }
}

################################################################################
# Push notifications (SNS mobile push; sns.tf)
################################################################################

variable "push_ios" {
  description = "APNs token-based credentials' public parts for iOS pushes (null: no iOS pushes). `sandbox` sends through APNs' development environment."
  type = object({
    bundle_id = string
    team_id   = string
    key_id    = string
    sandbox   = optional(bool, false)
  })
  default = null
}

variable "apns_signing_key" {
  description = "The APNs signing key (.p8 file contents) of push_ios.key_id. Sensitive: pass it as TF_VAR_apns_signing_key."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.apns_signing_key == null || can(regex("BEGIN PRIVATE KEY", var.apns_signing_key))
    error_message = "apns_signing_key must be the contents of an APNs .p8 key file."
  }
}

variable "push_android" {
  description = "Whether Android phones get pushes through FCM (then fcm_service_account_json is required)."
  type        = bool
  default     = false
}

variable "fcm_service_account_json" {
  description = "The FCM v1 service account's JSON key. Sensitive: pass it as TF_VAR_fcm_service_account_json."
  type        = string
  default     = null
  sensitive   = true
}

################################################################################
# Kubernetes identities (must match the manifests in infra/k8s)
################################################################################

variable "app_namespace" {
  description = "The Kubernetes namespace of the api and worker Deployments."
  type        = string
  default     = "longhaul"
}

variable "external_secrets_namespace" {
  description = "The namespace of the External Secrets Operator, which copies the database credentials and LONGHAUL_SECRET_KEYS from Secrets Manager into Kubernetes Secrets."
  type        = string
  default     = "external-secrets"
}
