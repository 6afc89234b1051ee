-- Up Migration
-- Custodian shares may be encrypted by either KMS provider (KMS_PROVIDER, activities/kms-ciphertext.ts):
-- a Vault Transit ciphertext (vault:vN:…) or an AWS KMS envelope (awskms:e1:vN:…). The CHECK still
-- refuses anything else, so a bug cannot store a plaintext share. No down migration on purpose: rows
-- of the AWS KMS provider would break the old CHECK.
ALTER TABLE custodian_shares DROP CONSTRAINT custodian_shares_encrypted_share_check;
ALTER TABLE custodian_shares ADD CONSTRAINT custodian_shares_encrypted_share_check
  CHECK (encrypted_share ~ '^(vault:v[0-9]+|awskms:e1:v[0-9]+):.');
