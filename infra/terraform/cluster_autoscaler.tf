################################################################################
# Cluster autoscaler: nodes follow the pods that KEDA adds
#
# KEDA adds worker pods as queues grow; pods that do not fit make the
# autoscaler grow the node group they need (the video group from zero), and
# it shrinks groups whose nodes stay idle. It discovers the managed node
# groups by the tags EKS puts on their Auto Scaling groups, and may only
# resize those (iam.tf).
################################################################################

resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.cluster_autoscaler_chart_version
  namespace  = local.pod_identities["cluster-autoscaler"].namespace

  atomic          = true
  cleanup_on_fail = true
  timeout         = 600

  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = local.region
    autoDiscovery = { clusterName = module.eks.cluster_name }
    image         = { tag = var.cluster_autoscaler_image_tag }
    rbac = {
      serviceAccount = {
        create = true
        name   = local.pod_identities["cluster-autoscaler"].service_account
      }
    }
    extraArgs = {
      # The general group's instance types are alike: keep its nodes even
      # across the zones.
      balance-similar-node-groups = true
      expander                    = "least-waste"
      # A video node is only removed once its worker is gone: the worker's
      # pods carry a PodDisruptionBudget and a long termination grace.
      skip-nodes-with-local-storage = false
      skip-nodes-with-system-pods   = false
    }
  })]

  lifecycle {
    precondition {
      condition     = startswith(var.cluster_autoscaler_image_tag, "v${var.kubernetes_version}.")
      error_message = "cluster_autoscaler_image_tag must have the cluster's Kubernetes minor (kubernetes_version)."
    }
  }

  depends_on = [
    aws_eks_pod_identity_association.this,
    module.eks,
  ]
}
