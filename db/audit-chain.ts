/**
 * The audit trail as a hash chain, pure: how a row is hashed, what a seal signs, and how a walk
 * over the rows and seals names the first row that was changed, inserted or removed. The database
 * side (appends under a lock, reads) is db/audit-trail.ts; the signatures are Vault Transit's
 * (adapters/vault/audit-chain-signer.ts).
 *
 * A row's hash is sha256 over a canonical encoding of its fields and the previous row's hash, so
 * changing, inserting or removing a row breaks the chain at that row unless every later hash is
 * recomputed. Recomputing is possible for anyone who can write the table (the algorithm is
 * public): the seals catch that, since a seal is a signature over a row's hash made with a Vault
 * key the database administrator does not hold.
 */
import { createHash } from 'node:crypto';
import type { AuditDetailValue } from '../contracts/audit-events';

/** The previous hash of the first row. */
export const GENESIS_HASH = '0'.repeat(64);

/** A row as stored: `details` is the canonical JSON text the hash covers, byte for byte. */
export interface AuditChainRow {
  seq: number;
  eventId: string;
  kind: string;
  actor: string;
  userId: string | null;
  subject: string;
  details: string;
  /** ISO 8601 with milliseconds. */
  at: string;
  prevHash: string;
  hash: string;
}

/** A signed chain head: the row at `seq` had hash `headHash` when it was signed. */
export interface AuditSeal {
  id: number;
  seq: number;
  headHash: string;
  signedAt: string;
  keyName: string;
  signature: string;
}

/** What sealing and verifying need of the signing key (Vault Transit: adapters/vault/audit-chain-signer.ts). */
export interface AuditSigner {
  readonly keyName: string;
  sign(message: string): Promise<string>;
  /** Whether each signature is the key's over its message; a malformed signature is false, never an error. */
  verifyEach(items: { message: string; signature: string }[]): Promise<boolean[]>;
}

export type AuditProblemKind = 'changed' | 'inserted' | 'removed' | 'rewritten' | 'tail-removed' | 'seal-forged' | 'unsealed';

/** One thing the walk found wrong, at the first row it concerns. */
export interface AuditChainProblem {
  kind: AuditProblemKind;
  seq: number;
  eventId?: string;
  message: string;
}

export interface AuditVerification {
  ok: boolean;
  rows: number;
  headSeq?: number;
  headHash?: string;
  /** The newest seal whose signature Vault confirmed and whose head the chain still has. */
  sealedSeq?: number;
  sealedAt?: string;
  /** Rows after the newest good seal: protected by the chain only until the next seal. */
  unsealedRows: number;
  /** Sorted by seq: the first is the first row that was tampered with. */
  problems: AuditChainProblem[];
}

/** JSON with object keys sorted at every level: one text per value, whatever the key order it was built with. */
export function canonicalJson(value: AuditDetailValue): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('audit details: numbers must be finite');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).filter((key) => value[key] !== undefined).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key]!)}`).join(',')}}`;
}

/** The row's hash: sha256 (hex) over a JSON array of its fields in a fixed order and the previous hash. */
export function auditRowHash(row: Omit<AuditChainRow, 'seq' | 'hash'>): string {
  const encoded = JSON.stringify(['mpc-audit-v1', row.eventId, row.kind, row.actor, row.userId, row.subject, row.details, row.at, row.prevHash]);
  return createHash('sha256').update(encoded, 'utf8').digest('hex');
}

/** The text a seal signs: the chain's position and head hash, and when. */
export function sealMessage(seal: Pick<AuditSeal, 'seq' | 'headHash' | 'signedAt'>): string {
  return `mpc-backup-audit-seal:v1:${seal.seq}:${seal.headHash}:${seal.signedAt}`;
}

export interface VerifyOptions {
  /** Whether Vault confirmed each seal's signature (by seal id). */
  signatureValid: (seal: AuditSeal) => boolean;
  /** Rows older than this past the newest good seal fail the walk (a seal was deleted, or the sealer is down). */
  maxUnsealedAgeMs: number;
  now: number;
}

/** Walks `rows` (ascending seq) and `seals`: every problem, the first row it concerns first. */
export function verifyAuditChain(rows: readonly AuditChainRow[], seals: readonly AuditSeal[], options: VerifyOptions): AuditVerification {
  const problems = [...chainProblems(rows)];
  const sealCheck = checkSeals(rows, seals, options.signatureValid);
  problems.push(...sealCheck.problems);
  const unsealed = rows.filter((row) => row.seq > (sealCheck.sealed?.seq ?? 0));
  const stale = unsealed.find((row) => options.now - Date.parse(row.at) > options.maxUnsealedAgeMs);
  if (stale) {
    problems.push({
      kind: 'unsealed',
      seq: stale.seq,
      eventId: stale.eventId,
      message: `row ${stale.seq} (${stale.eventId}) was appended at ${stale.at} and no valid seal covers it: a seal was removed, or the sealer has not run (check the worker's audit sealer and its Vault policy)`,
    });
  }
  problems.sort((a, b) => a.seq - b.seq);
  const head = rows.at(-1);
  return {
    ok: problems.length === 0,
    rows: rows.length,
    ...(head ? { headSeq: head.seq, headHash: head.hash } : {}),
    ...(sealCheck.sealed ? { sealedSeq: sealCheck.sealed.seq, sealedAt: sealCheck.sealed.signedAt } : {}),
    unsealedRows: unsealed.length,
    problems,
  };
}

/** The rows' own problems: a hash that does not match its row, a link to a row that is not the one before. */
function chainProblems(rows: readonly AuditChainRow[]): AuditChainProblem[] {
  const problems: AuditChainProblem[] = [];
  const indexByHash = new Map(rows.map((row, index) => [row.hash, index]));
  const bypassed = new Set<number>();
  if (rows.length > 0 && rows[0]!.seq !== 1) {
    problems.push(removed(rows[0]!, undefined));
  }
  for (let i = 0; i < rows.length; i += 1) {
    const row = rows[i]!;
    const before = i === 0 ? undefined : rows[i - 1]!;
    const expectedPrev = before ? before.hash : GENESIS_HASH;
    if (row.prevHash === expectedPrev) continue;
    if (before && row.seq !== before.seq + 1) {
      problems.push(removed(row, before));
      continue;
    }
    const linked = row.prevHash === GENESIS_HASH ? -1 : indexByHash.get(row.prevHash);
    if (linked !== undefined && linked < i - 1) {
      // The row links past the ones before it: those were inserted.
      const first = rows[linked + 1]!;
      for (let k = linked + 1; k < i; k += 1) bypassed.add(k);
      problems.push({
        kind: 'inserted',
        seq: first.seq,
        eventId: first.eventId,
        message: `row ${first.seq} (${first.eventId}) was inserted: row ${row.seq} (${row.eventId}) follows row ${linked >= 0 ? rows[linked]!.seq : '(the start)'} in the chain${i - linked - 1 > 1 ? `, and ${i - linked - 1} rows stand between` : ''}`,
      });
      continue;
    }
    // The next row links past this one: this one was inserted (reported at the next row).
    if (rows[i + 1]?.prevHash === expectedPrev) continue;
    if (before && auditRowHash(before) === before.hash) {
      problems.push({
        kind: 'changed',
        seq: before.seq,
        eventId: before.eventId,
        message: `row ${before.seq} (${before.eventId}) was changed and its hash recomputed (or a row after it removed and the rest renumbered): row ${row.seq} links to a hash no row has`,
      });
    }
  }
  rows.forEach((row, index) => {
    if (bypassed.has(index) || auditRowHash(row) === row.hash) return;
    problems.push({ kind: 'changed', seq: row.seq, eventId: row.eventId, message: `row ${row.seq} (${row.eventId}) was changed: its fields no longer match its hash` });
  });
  return dedupe(problems);
}

function removed(row: AuditChainRow, before: AuditChainRow | undefined): AuditChainProblem {
  const from = before ? before.seq + 1 : 1;
  const to = row.seq - 1;
  const which = from === to ? `row ${from} was` : `rows ${from} to ${to} were`;
  return { kind: 'removed', seq: from, message: `${which} removed: row ${row.seq} (${row.eventId}) follows ${before ? `row ${before.seq}` : 'the start of the chain'}` };
}

/** One problem per row and kind. */
function dedupe(problems: AuditChainProblem[]): AuditChainProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.kind}:${problem.seq}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The seals against the chain: each must carry Vault's signature and name a head the chain still
 * has. A forged seal, a head hash that changed (the rows up to it were rewritten and their hashes
 * recomputed) and a sealed row that is gone (the tail was removed) are each a problem. The newest
 * seal that holds is the sealed position.
 */
function checkSeals(rows: readonly AuditChainRow[], seals: readonly AuditSeal[], signatureValid: (seal: AuditSeal) => boolean): { sealed?: AuditSeal; problems: AuditChainProblem[] } {
  const problems: AuditChainProblem[] = [];
  const bySeq = new Map(rows.map((row) => [row.seq, row]));
  const last = rows.at(-1);
  let sealed: AuditSeal | undefined;
  let lastGood = 0;
  for (const seal of [...seals].sort((a, b) => a.seq - b.seq || a.id - b.id)) {
    if (!signatureValid(seal)) {
      problems.push({ kind: 'seal-forged', seq: seal.seq, message: `seal ${seal.id} (row ${seal.seq}, ${seal.signedAt}) does not carry a valid signature of Vault key ${seal.keyName}: it was forged or altered` });
      continue;
    }
    const row = bySeq.get(seal.seq);
    if (!row) {
      const where = last ? `the chain ends at row ${last.seq}` : 'the chain is empty';
      problems.push({ kind: 'tail-removed', seq: (last?.seq ?? 0) + 1, message: `rows were removed: seal ${seal.id} of ${seal.signedAt} covers row ${seal.seq}, but ${where}` });
      continue;
    }
    if (row.hash !== seal.headHash) {
      problems.push({
        kind: 'rewritten',
        seq: lastGood + 1,
        message: `rows ${lastGood + 1} to ${seal.seq} were rewritten and their hashes recomputed: seal ${seal.id} of ${seal.signedAt} signed a different hash for row ${seal.seq} (the first changed row is after row ${lastGood}, the last seal that still matches)`,
      });
      continue;
    }
    lastGood = seal.seq;
    sealed = seal;
  }
  return { ...(sealed ? { sealed } : {}), problems };
}
