# The stack's outputs, as they are: the environment a deployment needs.

output "aws_region" {
  value = module.longhaul.aws_region
}

output "api_env" {
  value = module.longhaul.api_env
}

output "worker_env" {
  value = module.longhaul.worker_env
}

output "environment" {
  value = module.longhaul.environment
}

output "secret_env" {
  value = module.longhaul.secret_env
}

output "database" {
  value = module.longhaul.database
}

output "sqs_queue_prefix" {
  value = module.longhaul.sqs_queue_prefix
}

output "sqs_queues" {
  value = module.longhaul.sqs_queues
}

output "object_store" {
  value = module.longhaul.object_store
}

output "sns_topic_arn" {
  value = module.longhaul.sns_topic_arn
}

output "secret_keys_secret_arn" {
  value = module.longhaul.secret_keys_secret_arn
}

output "service_accounts" {
  value = module.longhaul.service_accounts
}

output "video_node_placement" {
  value = module.longhaul.video_node_placement
}

output "keda" {
  value = module.longhaul.keda
}

output "cluster_name" {
  value = module.longhaul.cluster_name
}

output "cluster_endpoint" {
  value = module.longhaul.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  value = module.longhaul.cluster_certificate_authority_data
}

output "vpc_id" {
  value = module.longhaul.vpc_id
}

output "availability_zones" {
  value = module.longhaul.availability_zones
}
