################################################################################
# KEDA: workers scale on queue depth
#
# Each lane's worker Deployment has an `aws-sqs-queue` ScaledObject (in
# infra/k8s) on its lane queue, with a TriggerAuthentication of
# `podIdentity: { provider: aws }`: KEDA reads the queue's depth as the
# keda-operator service account, whose EKS Pod Identity association (iam.tf)
# gives it sqs:GetQueueAttributes on the lane queues and nothing else.
################################################################################

resource "helm_release" "keda" {
  name             = "keda"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.keda_chart_version
  namespace        = local.pod_identities["keda-operator"].namespace
  create_namespace = true

  atomic          = true
  cleanup_on_fail = true
  timeout         = 600

  values = [yamlencode({
    # Credentials come from EKS Pod Identity: no IRSA annotation.
    podIdentity = {
      aws = {
        irsa = { enabled = false }
      }
    }
    serviceAccount = {
      operator = {
        create = true
        name   = local.pod_identities["keda-operator"].service_account
      }
    }

    # One leader serves; the second replica takes over within seconds, so
    # that scaling does not stop while a node is replaced.
    operator      = { replicaCount = 2 }
    metricsServer = { replicaCount = 2 }
    webhooks      = { replicaCount = 2 }
    podDisruptionBudget = {
      operator     = { minAvailable = 1 }
      metricServer = { minAvailable = 1 }
      webhooks     = { minAvailable = 1 }
    }
    # Replicas in different zones (the chart's app.kubernetes.io/name labels).
    topologySpreadConstraints = {
      for component, app in {
        operator      = "keda-operator"
        metricsServer = "keda-operator-metrics-apiserver"
        webhooks      = "keda-admission-webhooks"
        } : component => [{
          maxSkew           = 1
          topologyKey       = "topology.kubernetes.io/zone"
          whenUnsatisfiable = "ScheduleAnyway"
          labelSelector     = { matchLabels = { "app.kubernetes.io/name" = app } }
      }]
    }
  })]

  # The operator must have its credentials from its first start, and the
  # nodes must exist to run it.
  depends_on = [
    aws_eks_pod_identity_association.this,
    module.eks,
  ]
}
