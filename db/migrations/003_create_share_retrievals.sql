-- Up Migration
-- The audit of eject retrievals (getClientBackupShare): who asked for a user's decrypted client
-- backup shares, when, which pairs, and whether they were released. Ids and identities only: the
-- shares themselves are never stored here. Rows are only ever inserted.
--   requested_by:   the caller's Vault identity (token display name), which authorised the decrypt;
--   outcome:        released, or refused (with the reason in detail).
CREATE TABLE share_retrievals (
  id            bigserial   PRIMARY KEY,
  user_id       text        NOT NULL CHECK (user_id <> ''),
  pair_ids      text[]      NOT NULL DEFAULT '{}',
  requested_by  text        NOT NULL CHECK (requested_by <> ''),
  vault_entity  text,
  reason        text        NOT NULL CHECK (reason <> ''),
  outcome       text        NOT NULL CHECK (outcome IN ('released', 'refused')),
  detail        text,
  at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX share_retrievals_user_idx ON share_retrievals (user_id, at);
