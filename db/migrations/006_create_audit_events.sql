-- Up Migration
-- The audit trail (contracts/audit-events.ts, db/audit-chain.ts): every release, approval,
-- rejection, recovery start and end, retry, abandon, key rotation, minimum-version raise and
-- fleet-run control, appended as a hash chain. Rows are only ever inserted, one at a time under an
-- advisory lock (db/audit-trail.ts), so seq has no gaps and each row's prev_hash is the hash of the
-- row before it: the chain never forks.
--   event_id: deterministic per act (workflow id / run id / kind / the act's own id): a retried
--             append finds its row and writes nothing;
--   details:  the canonical JSON text the hash covers, byte for byte (text, not jsonb: jsonb would
--             re-encode it). Ids, counts, versions and reasons only: never a share, token or key;
--   hash:     sha256 (hex) over the fields and prev_hash; the first row's prev_hash is 64 zeros.
CREATE TABLE audit_events (
  seq        bigint      PRIMARY KEY CHECK (seq > 0),
  event_id   text        NOT NULL UNIQUE CHECK (event_id <> ''),
  kind       text        NOT NULL CHECK (kind ~ '^[a-z_]+\.[a-z_]+$'),
  actor      text        NOT NULL CHECK (actor <> ''),
  user_id    text,
  subject    text        NOT NULL CHECK (subject <> ''),
  details    text        NOT NULL,
  at         timestamptz NOT NULL,
  prev_hash  text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash       text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);

CREATE INDEX audit_events_user_idx ON audit_events (user_id, seq);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- Signed chain heads: the row at seq had hash head_hash when the Vault Transit key key_name
-- (an ed25519 key the database administrator does not hold) signed
-- 'mpc-backup-audit-seal:v1:<seq>:<head_hash>:<signed_at>'. A DBA who rewrites rows and recomputes
-- every hash cannot make a matching signature; a tail removed after a seal leaves the seal pointing
-- at a row that is gone.
CREATE TABLE audit_seals (
  id         bigserial   PRIMARY KEY,
  seq        bigint      NOT NULL CHECK (seq > 0),
  head_hash  text        NOT NULL CHECK (head_hash ~ '^[0-9a-f]{64}$'),
  signed_at  text        NOT NULL,
  key_name   text        NOT NULL,
  signature  text        NOT NULL CHECK (signature LIKE 'vault:v%')
);

CREATE INDEX audit_seals_seq_idx ON audit_seals (seq);
