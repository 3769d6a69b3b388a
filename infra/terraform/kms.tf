################################################################################
# KMS: one customer managed key per kind of data
################################################################################

locals {
  kms_keys = {
    artifacts = "S3 artifacts and media bucket"
    events    = "SNS job events topic"
    database  = "RDS PostgreSQL storage and Performance Insights"
    secrets   = "Secrets Manager: the RDS master password and LONGHAUL_SECRET_KEYS"
  }
}

resource "aws_kms_key" "this" {
  for_each = local.kms_keys

  description             = "${local.name}: ${each.value}"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_key.json

  tags = merge(local.tags, { Name = "${local.name}-${each.key}" })
}

resource "aws_kms_alias" "this" {
  for_each = local.kms_keys

  name          = "alias/${local.name}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}

# The key policy delegates to IAM: the account may administer and use the
# key, and the IAM policies in iam.tf decide which role uses which key, for
# which service (kms:ViaService). The actions are listed instead of `kms:*`,
# so that what a symmetric data key never needs (key material import,
# signing, MACs, multi-Region replication) is not delegated at all.
# `resources = ["*"]` in a key policy means this key.
data "aws_iam_policy_document" "kms_key" {
  #checkov:skip=CKV_AWS_109:This is a key policy: its Resource "*" is the key it is attached to, and its only principal is this account, which delegates to the IAM policies in iam.tf.
  #checkov:skip=CKV_AWS_111:This is a key policy: its Resource "*" is the key it is attached to, and its only principal is this account, which delegates to the IAM policies in iam.tf.
  #checkov:skip=CKV_AWS_356:This is a key policy: its Resource "*" is the key it is attached to, and its only principal is this account, which delegates to the IAM policies in iam.tf.
  statement {
    sid    = "AccountAdministersTheKey"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListGrants",
      "kms:ListKeyPolicies",
      "kms:ListKeyRotations",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:RetireGrant",
      "kms:RevokeGrant",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "AccountUsesTheKeyThroughIam"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]
  }

  # RDS, EBS and Secrets Manager hold grants on the keys they use.
  statement {
    sid    = "AwsServicesHoldGrants"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}
