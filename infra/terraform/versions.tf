terraform {
  # 1.10: the S3 backend's native lock file (`use_lockfile`) in envs/*.
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.28: the floor of terraform-aws-modules/vpc 6.x and eks 21.x.
      version = "~> 6.28"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
  }
}
