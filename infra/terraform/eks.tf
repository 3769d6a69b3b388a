################################################################################
# EKS: the cluster and its managed node groups, across the three zones
################################################################################

module "eks" {
  #checkov:skip=CKV_TF_1:Terraform Registry module, pinned by a version constraint to one major release; the team upgrades it through registry versions and their upgrade guides, which a git commit hash would bypass.
  source = "terraform-aws-modules/eks/aws"
  # 21.1 added deletion_protection.
  version = "~> 21.1"

  name               = local.name
  kubernetes_version = var.kubernetes_version

  # Private endpoint always; a public one only if asked, and then only from
  # the listed networks.
  endpoint_private_access      = true
  endpoint_public_access       = var.endpoint_public_access
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs

  deletion_protection = var.environment == "prod"

  # Access entries, not the aws-auth ConfigMap.
  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = true
  access_entries = {
    for i, arn in var.cluster_admin_role_arns : "admin-${i}" => {
      principal_arn = arn
      policy_associations = {
        admin = {
          policy_arn   = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
          access_scope = { type = "cluster" }
        }
      }
    }
  }

  enabled_log_types                      = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  cloudwatch_log_group_retention_in_days = 90

  addons = {
    # Before the nodes: pods get credentials from their service account's
    # Pod Identity association (iam.tf) from the moment they start.
    eks-pod-identity-agent = { before_compute = true }
    vpc-cni                = { before_compute = true }
    kube-proxy             = {}
    coredns                = {}
    # The API's HorizontalPodAutoscaler reads CPU from the metrics API.
    metrics-server = {}
  }

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  eks_managed_node_groups = {
    # Everything but video: api, the email, refresh, reports, data and
    # default workers, KEDA, the cluster autoscaler and system pods. One
    # group over the three private subnets; the pods spread across zones
    # with topology spread constraints.
    general = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.general_nodes.instance_types
      capacity_type  = "ON_DEMAND"
      subnet_ids     = module.vpc.private_subnets

      min_size     = var.general_nodes.min_size
      max_size     = var.general_nodes.max_size
      desired_size = var.general_nodes.desired_size

      labels = {
        "longhaul.dev/pool" = "general"
      }

      update_config = { max_unavailable_percentage = 33 }
    }

    # The video lane: ffmpeg-bound, so compute-optimised instances, on
    # demand (a job runs up to two hours; a Spot interruption would throw
    # that work away). Tainted so that only pods that tolerate lane=video
    # land here, and labelled so that video workers select it.
    video = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.video_nodes.instance_types
      capacity_type  = "ON_DEMAND"
      subnet_ids     = module.vpc.private_subnets

      min_size     = var.video_nodes.min_size
      max_size     = var.video_nodes.max_size
      desired_size = var.video_nodes.desired_size

      # infra/k8s's video workers select longhaul.dev/lane=video.
      labels = {
        "longhaul.dev/pool" = "video"
        "longhaul.dev/lane" = "video"
      }

      # The cluster autoscaler scales this group from zero: it reads these
      # labels and this taint from the EKS API (eks:DescribeNodegroup,
      # iam.tf) before any node exists.
      taints = {
        video = {
          key    = "lane"
          value  = "video"
          effect = "NO_SCHEDULE"
        }
      }

      # Scratch space for frames and the encoded film.
      block_device_mappings = {
        xvda = {
          device_name = "/dev/xvda"
          ebs = {
            volume_size           = var.video_nodes.disk_size_gib
            volume_type           = "gp3"
            encrypted             = true
            delete_on_termination = true
          }
        }
      }

      # Nodes drain one at a time: a video job may take two hours to finish.
      update_config = { max_unavailable = 1 }
    }
  }

  tags = local.tags
}
