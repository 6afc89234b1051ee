-- Up Migration
-- The encrypted client backup share of each pair (Self-Managed, or the company's own copy with
-- Portal-Managed). Written once per (user, pair): a different ciphertext for a stored pair is
-- refused by the repository, never overwritten. Only Transit ciphertexts: no plaintext share.
-- No down migration on purpose: dropping this table would destroy the only copy of the shares.
CREATE TABLE client_ciphertexts (
  user_id    text        NOT NULL CHECK (user_id <> ''),
  pair_id    text        NOT NULL CHECK (pair_id <> ''),
  ciphertext text        NOT NULL CHECK (ciphertext <> ''),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, pair_id)
);
