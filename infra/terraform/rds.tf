################################################################################
# RDS PostgreSQL: the job rows, the outboxes and the travel data
#
# Multi-AZ (a synchronous standby in another zone), encrypted with its own
# key, backed up daily with point-in-time recovery, deletion-protected. RDS
# keeps the master password in Secrets Manager and rotates it; the
# Kubernetes side composes LONGHAUL_DATABASE_URL from that secret (see the
# `database` output).
################################################################################

resource "aws_db_subnet_group" "this" {
  name        = local.name
  description = "${local.name}: the database subnets of the three zones"
  subnet_ids  = module.vpc.database_subnets

  tags = local.tags
}

resource "aws_security_group" "db" {
  name        = "${local.name}-db"
  description = "${local.name} PostgreSQL: reachable from the EKS nodes (and so pods) only"
  vpc_id      = module.vpc.vpc_id

  tags = merge(local.tags, { Name = "${local.name}-db" })
}

resource "aws_vpc_security_group_ingress_rule" "db_from_nodes" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the EKS nodes and their pods"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = module.eks.node_security_group_id
}

resource "aws_db_parameter_group" "this" {
  # A prefix, so that a major upgrade (a new family) creates the new group
  # before it drops the old one.
  name_prefix = "${local.name}-postgres${split(".", var.db_engine_version)[0]}-"
  family      = "postgres${split(".", var.db_engine_version)[0]}"
  description = "${local.name}: TLS only, slow-query and lock logging"

  # Connections must use TLS (LONGHAUL_DATABASE_URL carries sslmode=require).
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Statements slower than a second, and the DDL of migrations, are logged.
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_lock_waits"
    value = "1"
  }

  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot"
  }

  lifecycle {
    create_before_destroy = true
  }

  tags = local.tags
}

resource "aws_db_instance" "this" {
  identifier = local.name

  engine                     = "postgres"
  engine_version             = var.db_engine_version
  auto_minor_version_upgrade = true
  instance_class             = var.db_instance_class
  parameter_group_name       = aws_db_parameter_group.this.name
  ca_cert_identifier         = "rds-ca-rsa2048-g1"

  # Availability: a synchronous standby in a second zone, automatic failover.
  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false

  storage_type          = "gp3"
  allocated_storage     = var.db_allocated_storage_gib
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.this["database"].arn

  db_name  = var.db_name
  username = var.db_username
  port     = 5432
  # RDS generates the password, keeps it in Secrets Manager (encrypted with
  # the secrets key) and rotates it; it never enters Terraform's state.
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = aws_kms_key.this["secrets"].arn
  iam_database_authentication_enabled = true

  # Daily backups and point-in-time recovery; tags follow the snapshots.
  backup_retention_period  = var.db_backup_retention_days
  backup_window            = "02:00-03:00"
  maintenance_window       = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot    = true
  delete_automated_backups = false

  deletion_protection       = true
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.name}-final"

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this["database"].arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn

  tags = local.tags
}

# Enhanced Monitoring publishes OS metrics through this role.
resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_trust.json

  tags = local.tags
}

data "aws_iam_policy_document" "rds_monitoring_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
