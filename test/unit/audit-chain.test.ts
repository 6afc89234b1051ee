import { describe, expect, it } from 'vitest';
import { auditRowHash, canonicalJson, GENESIS_HASH, sealMessage, verifyAuditChain, type AuditChainRow, type AuditSeal } from '../../db/audit-chain';
import { auditEventId } from '../../contracts/audit-events';
import { secretKeyIn } from '../../db/audit-trail';

const T0 = Date.parse('2026-12-05T04:00:00.000Z');

/** A chain of `n` rows appended as db/audit-trail.ts does: each hashed onto the one before. */
function chain(n: number): AuditChainRow[] {
  const rows: AuditChainRow[] = [];
  for (let seq = 1; seq <= n; seq += 1) rows.push(hashed({ ...fields(seq), prevHash: rows.at(-1)?.hash ?? GENESIS_HASH }));
  return rows;
}

function fields(seq: number) {
  return {
    seq,
    eventId: `wf-${seq}/run/backup.retried`,
    kind: 'backup.retried',
    actor: 'ops-alice',
    userId: `user-${seq}`,
    subject: `wf-${seq}/run`,
    details: canonicalJson({ step: 'STORE', attempts: seq }),
    at: new Date(T0 + seq * 1000).toISOString(),
  };
}

function hashed(row: Omit<AuditChainRow, 'hash'>): AuditChainRow {
  return { ...row, hash: auditRowHash(row) };
}

/** Recomputes every hash from `from` on, as a DBA who knows the algorithm would. */
function rehash(rows: AuditChainRow[]): AuditChainRow[] {
  const out: AuditChainRow[] = [];
  for (const row of rows) out.push(hashed({ ...row, prevHash: out.at(-1)?.hash ?? GENESIS_HASH }));
  return out;
}

function sealOf(rows: AuditChainRow[], seq: number, id = seq): AuditSeal {
  return { id, seq, headHash: rows.find((row) => row.seq === seq)!.hash, signedAt: new Date(T0 + seq * 1000 + 500).toISOString(), keyName: 'audit-chain', signature: `vault:v1:sig-${seq}` };
}

const allValid = { signatureValid: () => true, maxUnsealedAgeMs: 3_600_000, now: T0 + 60_000 };

describe('audit chain hashing', () => {
  it('encodes details canonically: key order does not change the text, and nested keys are sorted too', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x'], c: null } })).toBe('{"a":{"c":null,"d":[1,"x"]},"b":1}');
    expect(canonicalJson({ a: { c: null, d: [1, 'x'] }, b: 1 })).toBe(canonicalJson({ b: 1, a: { d: [1, 'x'], c: null } }));
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/finite/);
  });

  it('hashes every field and the previous hash: changing any one changes the hash', () => {
    const row = chain(1)[0]!;
    const { hash, seq: _seq, ...base } = row;
    expect(auditRowHash(base)).toBe(hash);
    for (const [key, value] of Object.entries({ eventId: 'x', kind: 'backup.abandoned', actor: 'mallory', userId: null, subject: 's', details: '{}', at: new Date(T0).toISOString(), prevHash: 'f'.repeat(64) })) {
      expect(auditRowHash({ ...base, [key]: value }), key).not.toBe(hash);
    }
  });

  it('gives an act the same id every time it is asked (workflow, run, kind, the act’s own id)', () => {
    const parts = { workflowId: 'recovery-u1', runId: 'r1', kind: 'recovery.retried' as const, act: 'update-7' };
    expect(auditEventId(parts)).toBe(auditEventId({ ...parts }));
    expect(auditEventId(parts)).toBe('recovery-u1/r1/recovery.retried/update-7');
    expect(auditEventId({ ...parts, act: 'update-8' })).not.toBe(auditEventId(parts));
  });

  it('finds a detail key that names a secret at any depth', () => {
    expect(secretKeyIn({ step: 'STORE', pairIds: ['p1'] })).toBeUndefined();
    expect(secretKeyIn({ outer: { clientApiKey: 'k' } })).toBe('clientApiKey');
    expect(secretKeyIn({ list: [{ share: 'x' }] })).toBe('share');
    expect(secretKeyIn({ vaultToken: 't' })).toBe('vaultToken');
  });

  it('signs a seal over the position, head hash and time', () => {
    expect(sealMessage({ seq: 3, headHash: 'ab', signedAt: '2026-12-05T04:00:00.000Z' })).toBe('mpc-backup-audit-seal:v1:3:ab:2026-12-05T04:00:00.000Z');
  });
});

describe('verifyAuditChain', () => {
  it('passes an intact, sealed chain and reports its head and seal', () => {
    const rows = chain(5);
    const result = verifyAuditChain(rows, [sealOf(rows, 3), sealOf(rows, 5)], allValid);
    expect(result).toMatchObject({ ok: true, rows: 5, headSeq: 5, headHash: rows[4]!.hash, sealedSeq: 5, unsealedRows: 0, problems: [] });
  });

  it('names a row whose fields were changed', () => {
    const rows = chain(5);
    rows[2] = { ...rows[2]!, actor: 'mallory' };
    const result = verifyAuditChain(rows, [], allValid);
    expect(result.ok).toBe(false);
    expect(result.problems[0]).toMatchObject({ kind: 'changed', seq: 3, eventId: rows[2]!.eventId });
    expect(result.problems).toHaveLength(1);
  });

  it('names a changed row whose own hash was recomputed (the next row no longer links to it)', () => {
    const rows = chain(5);
    rows[1] = hashed({ ...rows[1]!, details: canonicalJson({ step: 'MARK' }) });
    expect(verifyAuditChain(rows, [], allValid).problems[0]).toMatchObject({ kind: 'changed', seq: 2 });
  });

  it('names a removed row by the gap it leaves', () => {
    const rows = chain(5);
    rows.splice(2, 1);
    const result = verifyAuditChain(rows, [], allValid);
    expect(result.problems[0]).toMatchObject({ kind: 'removed', seq: 3 });
    expect(result.problems[0]!.message).toMatch(/row 3 was removed: row 4 .* follows row 2/);
  });

  it('names the first rows removed from the start', () => {
    const rows = chain(4).slice(2);
    expect(verifyAuditChain(rows, [], allValid).problems[0]).toMatchObject({ kind: 'removed', seq: 1, message: expect.stringMatching(/rows 1 to 2 were removed/) });
  });

  it('names an inserted row, hashed correctly onto the one before and renumbered into place', () => {
    const rows = chain(4);
    const inserted = hashed({ ...fields(3), eventId: 'forged/event', actor: 'mallory', prevHash: rows[1]!.hash });
    const tampered = [rows[0]!, rows[1]!, inserted, ...rows.slice(2).map((row) => ({ ...row, seq: row.seq + 1 }))];
    const result = verifyAuditChain(tampered, [], allValid);
    expect(result.problems[0]).toMatchObject({ kind: 'inserted', seq: 3, eventId: 'forged/event' });
    expect(result.problems).toHaveLength(1);
  });

  it('names an inserted row with a made-up hash as inserted, not as a change of the row before', () => {
    const rows = chain(4);
    const inserted: AuditChainRow = { ...fields(3), eventId: 'forged/event', prevHash: 'a'.repeat(64), hash: 'b'.repeat(64) };
    const tampered = [rows[0]!, rows[1]!, inserted, ...rows.slice(2).map((row) => ({ ...row, seq: row.seq + 1 }))];
    const result = verifyAuditChain(tampered, [], allValid);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'inserted', seq: 3, eventId: 'forged/event' })]);
  });

  it('catches a rewrite whose hashes were all recomputed only through the seals, and narrows it to the rows between two seals', () => {
    const rows = chain(6);
    const seals = [sealOf(rows, 2, 1), sealOf(rows, 4, 2), sealOf(rows, 6, 3)];
    const edited = rows.map((row) => (row.seq === 3 ? { ...row, actor: 'mallory' } : row));
    const rewritten = rehash(edited);
    expect(verifyAuditChain(rewritten, [], allValid).ok).toBe(true);
    const result = verifyAuditChain(rewritten, seals, allValid);
    expect(result.ok).toBe(false);
    expect(result.problems[0]).toMatchObject({ kind: 'rewritten', seq: 3 });
    expect(result.problems[0]!.message).toMatch(/rows 3 to 4 were rewritten/);
    expect(result.sealedSeq).toBe(2);
  });

  it('catches a tail removed after a seal', () => {
    const rows = chain(5);
    const result = verifyAuditChain(rows.slice(0, 3), [sealOf(rows, 5)], allValid);
    expect(result.problems[0]).toMatchObject({ kind: 'tail-removed', seq: 4 });
  });

  it('refuses a seal whose signature Vault does not confirm (a DBA cannot make one)', () => {
    const rows = rehash(chain(3).map((row) => (row.seq === 1 ? { ...row, actor: 'mallory' } : row)));
    const forged = { ...sealOf(rows, 3), signature: 'vault:v1:made-up' };
    const result = verifyAuditChain(rows, [forged], { ...allValid, signatureValid: (seal) => seal.signature !== 'vault:v1:made-up' });
    expect(result.problems.map((problem) => problem.kind)).toContain('seal-forged');
  });

  it('fails rows left unsealed longer than allowed (seals deleted, or no sealer), not fresh ones', () => {
    const rows = chain(3);
    expect(verifyAuditChain(rows, [sealOf(rows, 1)], { ...allValid, maxUnsealedAgeMs: 60_000, now: T0 + 30_000 })).toMatchObject({ ok: true, unsealedRows: 2 });
    const stale = verifyAuditChain(rows, [sealOf(rows, 1)], { ...allValid, maxUnsealedAgeMs: 60_000, now: T0 + 10 * 60_000 });
    expect(stale.problems[0]).toMatchObject({ kind: 'unsealed', seq: 2 });
  });

  it('passes an empty chain', () => {
    expect(verifyAuditChain([], [], allValid)).toMatchObject({ ok: true, rows: 0, unsealedRows: 0 });
  });
});
