-- Up Migration
-- Custodian backup shares delivered by Portal to the webhook (Self-Managed). Portal keeps no copy
-- after delivery, so this table is the only one; no down migration on purpose.
--   backup_method:   stored verbatim, as Portal sent it (a free string, "subject to change").
--   encrypted_share: the Vault Transit ciphertext of the share string; the CHECK refuses anything
--                    else, so a bug cannot store a plaintext share.
--   share_sha256:    hex SHA-256 of the exact share string Portal sent, so a repeated delivery is
--                    recognised although each Transit encryption of it differs.
CREATE TABLE custodian_shares (
  client_id       text        NOT NULL CHECK (client_id <> ''),
  backup_method   text        NOT NULL CHECK (backup_method <> ''),
  pair_id         text        NOT NULL CHECK (pair_id <> ''),
  encrypted_share text        NOT NULL CHECK (encrypted_share ~ '^vault:v[0-9]+:.'),
  share_sha256    text        NOT NULL CHECK (share_sha256 ~ '^[0-9a-f]{64}$'),
  received_at     timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, backup_method, pair_id)
);

-- Lookups by client (fetch) and by client and pair (the workflow's check before marking a pair).
-- The primary key already leads with client_id; this index also covers pair_id, which the key
-- only reaches after backup_method.
CREATE INDEX custodian_shares_client_pair_idx ON custodian_shares (client_id, pair_id);
