################################################################################
# longhaul: staging
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
    bucket       = "longhaul-terraform-state-staging"
    key          = "longhaul/staging/terraform.tfstate"
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
  description = "The Cognito user pool whose tokens staging accepts (eu-west-1_…)."
  type        = string
}

provider "aws" {
  region = local.region

  default_tags {
    tags = {
      Project     = "longhaul"
      Environment = "staging"
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

  environment                  = "staging"
  cognito_user_pool_id         = var.cognito_user_pool_id
  endpoint_public_access       = length(var.endpoint_public_access_cidrs) > 0
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs
  vpc_cidr                     = "10.20.0.0/16"
  # eu-west-1's zones, by ID; see the variable.
  availability_zone_ids        = ["euw1-az1", "euw1-az2", "euw1-az3"]

  # Smaller than prod, but the same shape: three zones, both node groups,
  # a Multi-AZ database.
  general_nodes = {
    instance_types = ["m7i.large", "m6i.large"]
    min_size       = 3
    max_size       = 6
    desired_size   = 3
  }
  video_nodes = {
    instance_types = ["c7i.xlarge", "c6i.xlarge"]
    min_size       = 0
    max_size       = 3
    desired_size   = 0
    disk_size_gib  = 50
  }

  db_instance_class            = "db.t4g.medium"
  db_allocated_storage_gib     = 20
  db_max_allocated_storage_gib = 100
  db_backup_retention_days     = 7
}
