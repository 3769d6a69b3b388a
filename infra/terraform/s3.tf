################################################################################
# S3: artifacts, media and the data lake
#
# Reports, films, uploaded photos and import files: every key is
# <prefix>/tenants/<tenant>/… The events data lake, the data lane's Parquet
# exports, is beside it, outside tenants/, with a retention of its own:
# <prefix>/lake/events/tenant=<t>/date=<d>/hour=<h>/part-<n>.parquet and a
# _manifest.json per partition.
# Private (no ACLs, no public policy), versioned, encrypted with the
# artifacts key, reachable over TLS only. Users reach objects through
# presigned URLs that the API signs.
################################################################################

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a target bucket without SSE-KMS (S3 cannot deliver them to one), against this stack's rule that every bucket is SSE-KMS; object access is audited by CloudTrail S3 data events and by longhaul's own audit log.
  #checkov:skip=CKV_AWS_144:longhaul runs in one Region (its database, queues and cluster too), so a replica of the bucket alone would not make it survive a Regional outage; S3 keeps objects across three zones, and versioning undoes overwrites and deletes. Cross-Region recovery is a decision for the whole stack, not this bucket.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: longhaul announces finished artifacts itself, on the SNS events topic, once the job's row commits.
  # Names are global: the account id keeps them unique.
  bucket = "${local.name}-artifacts-${local.account_id}"

  tags = local.tags
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object, whoever uploaded it.
resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  versioning_configuration {
    status = "Enabled"
  }
}

# Default encryption covers the uploads that carry no header (presigned
# PUTs); longhaul's own writes ask for this key (LONGHAUL_S3_KMS_KEY_ID).
# The bucket key cuts KMS requests to one per bucket key period.
resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this["artifacts"].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  # Versioning keeps a deleted or overwritten object's previous version so
  # that a mistake can be undone; not for ever.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.artifact_noncurrent_version_days
    }
  }

  # longhaul aborts a failed multipart upload itself; a worker killed in the
  # middle of one leaves its parts behind, and S3 would bill them for ever.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # The data lake: an events partition's files expire lake_retention_days
  # after they were last written (a delete marker; the rule below removes it
  # once the version under it is gone). A personal-data deletion rewrites the
  # partition's files, so the versions it replaces must not linger for
  # artifact_noncurrent_version_days: they expire after one day here (where
  # two rules overlap, S3 applies the shorter expiration). A worker killed
  # while uploading a Parquet file leaves its parts for a day, as elsewhere.
  rule {
    id     = "expire-lake-events"
    status = "Enabled"

    filter {
      prefix = "${local.lake_key_prefix}/events/"
    }

    expiration {
      days = var.lake_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # Once its noncurrent versions have expired, a deleted object's delete
  # marker is all that is left: remove it.
  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"

    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.artifacts]
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  policy = data.aws_iam_policy_document.artifacts_bucket.json

  # The public access block first, so that the policy is checked against it.
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

data "aws_iam_policy_document" "artifacts_bucket" {
  # TLS only, and TLS 1.2 at least.
  statement {
    sid    = "DenyInsecureTransport"
    effect = "Deny"
    # A deny may be broad: it takes rights away.
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [
      aws_s3_bucket.artifacts.arn,
      "${aws_s3_bucket.artifacts.arn}/*",
    ]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyOutdatedTls"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [
      aws_s3_bucket.artifacts.arn,
      "${aws_s3_bucket.artifacts.arn}/*",
    ]
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  # An upload that asks for S3-managed keys (a deployment without
  # LONGHAUL_S3_KMS_KEY_ID) is refused rather than stored outside the
  # artifacts key. Uploads that ask for nothing get the default: that key.
  statement {
    sid     = "DenyS3ManagedKeys"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["AES256"]
    }
  }
}
