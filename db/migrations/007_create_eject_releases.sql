-- Up Migration
-- Eject releases under the two-person rule (workflows/eject-shares.ts): once the approvers have
-- approved, a worker decrypts the user's client backup shares and seals them to the requester's
-- one-time X25519 key (JWE, adapters/sealing/recipient-seal.ts); the sealed text waits here until
-- the requester collects it (`backup eject collect`), which empties it. No plaintext share, and no
-- key that opens one, is ever stored: only the requester's key file opens `sealed`.
--   workflow_id, run_id: the eject run (eject-<userId>), one release per run (a retried release
--                        finds its row and writes nothing);
--   sealed:              the JWE compact text; NULL once collected or expired;
--   expires_at:          after it the release can no longer be collected (a new request is needed).
CREATE TABLE eject_releases (
  workflow_id   text        NOT NULL CHECK (workflow_id <> ''),
  run_id        text        NOT NULL CHECK (run_id <> ''),
  user_id       text        NOT NULL CHECK (user_id <> ''),
  pair_ids      text[]      NOT NULL,
  store         text        NOT NULL CHECK (store <> ''),
  requested_by  text        NOT NULL CHECK (requested_by <> ''),
  approved_by   text[]      NOT NULL,
  sealed        text,
  released_at   timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  collected_at  timestamptz,
  PRIMARY KEY (workflow_id, run_id)
);

CREATE INDEX eject_releases_user_idx ON eject_releases (user_id, released_at);
