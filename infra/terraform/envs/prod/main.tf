################################################################################
# longhaul: prod
#
#   terraform init && terraform apply -var cognito_user_pool_id=eu-west-1_…
#
# The state bucket is created once per account, outside this stack
# (versioned, SSE-KMS, public access blocked); `use_lockfile` locks the state
# with a lock object beside it, no DynamoDB table.
################################################################################

terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.28"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
  }

  backend "s3" {
    bucket       = "longhaul-terraform-state-prod"
    key          = "longhaul/prod/terraform.tfstate"
    region       = "eu-west-1"
    encrypt      = true
    use_lockfile = true
  }
}

locals {
  region = "eu-west-1"
}

variable "endpoint_public_access_cidrs" {
  description = "Networks (SRE VPN, CI runners' NAT) that may reach the EKS API server's public endpoint; empty, the endpoint is private only, and Terraform must run from inside the VPC."
  type        = list(string)
  default     = []
}

variable "cognito_user_pool_id" {
  description = "The Cognito user pool whose tokens prod accepts (eu-west-1_…)."
  type        = string
}

variable "cluster_admin_role_arns" {
  description = "The SRE and CI roles given cluster-admin on the prod cluster."
  type        = list(string)
  default     = []
}

provider "aws" {
  region = local.region

  default_tags {
    tags = {
      Project     = "longhaul"
      Environment = "prod"
      ManagedBy   = "terraform"
      Repository  = "longhaul/infra/terraform"
    }
  }
}

# Talks to the cluster this stack creates, as the identity running Terraform
# (the cluster's creator has cluster-admin).
provider "helm" {
  kubernetes = {
    host                   = module.longhaul.cluster_endpoint
    cluster_ca_certificate = base64decode(module.longhaul.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.longhaul.cluster_name, "--region", local.region]
    }
  }
}

module "longhaul" {
  source = "../../"

  environment                  = "prod"
  cognito_user_pool_id         = var.cognito_user_pool_id
  cluster_admin_role_arns      = var.cluster_admin_role_arns
  endpoint_public_access       = length(var.endpoint_public_access_cidrs) > 0
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs
  vpc_cidr                     = "10.30.0.0/16"
  # eu-west-1's zones, by ID; see the variable.
  availability_zone_ids        = ["euw1-az1", "euw1-az2", "euw1-az3"]

  general_nodes = {
    instance_types = ["m7i.xlarge", "m6i.xlarge"]
    min_size       = 3
    max_size       = 15
    desired_size   = 3
  }
  video_nodes = {
    instance_types = ["c7i.2xlarge", "c6i.2xlarge"]
    min_size       = 0
    max_size       = 12
    desired_size   = 0
    disk_size_gib  = 100
  }

  db_instance_class            = "db.r7g.large"
  db_allocated_storage_gib     = 200
  db_max_allocated_storage_gib = 1000
  db_backup_retention_days     = 35
}
