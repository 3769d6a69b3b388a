################################################################################
# VPC: three availability zones, three subnet tiers
################################################################################

module "vpc" {
  #checkov:skip=CKV_TF_1:Terraform Registry module, pinned by a version constraint to one major release; the team upgrades it through registry versions and their upgrade guides, which a git commit hash would bypass.
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 6.0"

  name = local.name
  cidr = var.vpc_cidr
  azs  = local.azs

  # One subnet per zone and tier. Pods take VPC addresses (VPC CNI), hence
  # /20s for the private tier.
  private_subnets  = [for i, az in local.azs : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets   = [for i, az in local.azs : cidrsubnet(var.vpc_cidr, 8, i + 48)]
  database_subnets = [for i, az in local.azs : cidrsubnet(var.vpc_cidr, 8, i + 52)]

  # rds.tf declares the DB subnet group itself, next to the instance.
  create_database_subnet_group       = false
  create_database_subnet_route_table = true

  # A NAT gateway per zone: losing one zone does not cut the others' egress.
  enable_nat_gateway     = true
  single_nat_gateway     = false
  one_nat_gateway_per_az = true

  enable_dns_hostnames = true
  enable_dns_support   = true

  # The default security group allows nothing.
  manage_default_security_group  = true
  default_security_group_ingress = []
  default_security_group_egress  = []

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_max_aggregation_interval               = 60
  flow_log_cloudwatch_log_group_retention_in_days = 365

  # Load balancers: internet-facing in public subnets, internal in private.
  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }
  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
  }

  tags = local.tags
}

# Artifacts and media go to S3 through a gateway endpoint: free, and the
# video lane's uploads do not pay NAT data processing.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = module.vpc.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = module.vpc.private_route_table_ids

  tags = merge(local.tags, { Name = "${local.name}-s3" })
}
