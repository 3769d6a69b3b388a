################################################################################
# Secrets Manager: LONGHAUL_SECRET_KEYS
#
# The key-encryption keys that seal users' mail credentials, as
# `id:base64[,id:base64…]` (each 32 random bytes). Terraform creates the
# secret, not its value, so that no key ever sits in Terraform's state; an
# SRE puts the first value once:
#
#   aws secretsmanager put-secret-value --secret-id <secret_keys_secret_arn> \
#     --secret-string "k1:$(openssl rand -base64 32)"
#
# The API and the email workers read it through the External Secrets
# Operator (iam.tf grants it this secret and no other but the database's).
################################################################################

resource "aws_secretsmanager_secret" "secret_keys" {
  #checkov:skip=CKV2_AWS_57:A key-encryption key cannot be rotated by replacing it: what the old key sealed would no longer open. longhaul rotates by putting a new key first and keeping the old ones listed (README, LONGHAUL_SECRET_KEYS), a manual, audited change of this secret's value.
  name        = "${local.name}/secret-keys"
  description = "LONGHAUL_SECRET_KEYS: the key-encryption keys of mail credentials (id:base64, newest first)"
  kms_key_id  = aws_kms_key.this["secrets"].arn

  # Deleting it by mistake would make every sealed mail credential
  # unreadable: keep a month to restore it.
  recovery_window_in_days = 30

  tags = local.tags
}
