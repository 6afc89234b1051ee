import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { StepReceipts } from '../../activities/step-receipts';
import { StepReceiptInvalidError } from '../../domain/errors';
import { hasReceiptOf, redoStepOf } from '../../domain/step-receipt';

const ring = (active: string, ...ids: string[]) => ({ activeKeyId: active, keys: new Map(ids.map((id) => [id, randomBytes(32)] as const)) });
const run = { workflowId: 'backup-u1', runId: 'run-1' };
const claims = { userId: 'u1', 'pair.SECP256K1': 'p1', 'pair.ED25519': 'p2' };

function refusal(check: () => void): StepReceiptInvalidError {
  try {
    check();
  } catch (error) {
    if (error instanceof StepReceiptInvalidError) return error;
    throw error;
  }
  throw new Error('the receipt was accepted');
}

describe('StepReceipts', () => {
  const keys = ring('s1', 's1');
  const receipts = new StepReceipts(keys);

  it('accepts its own receipt for the same step, run and claims, in any order of claims', () => {
    const receipt = receipts.issue('STORE', run, claims);
    expect(() => receipts.verify('STORE', run, { 'pair.ED25519': 'p2', userId: 'u1', 'pair.SECP256K1': 'p1' }, receipt)).not.toThrow();
    expect(hasReceiptOf({ receipt }, 'STORE')).toBe(true);
  });

  it('refuses, naming the step to run again, anything else: none, null, the codec marker, another step, run, pair or key, a made-up MAC', () => {
    const receipt = receipts.issue('STORE', run, claims);
    const cases: [string, () => void][] = [
      ['none', () => receipts.verify('STORE', run, claims, undefined)],
      ['null', () => receipts.verify('STORE', run, claims, null)],
      ['marker', () => receipts.verify('STORE', run, claims, { __mpcBackupUnencryptedPayload: true })],
      ['other step', () => receipts.verify('STORE', run, claims, receipts.issue('CHECK_CUSTODIAN', run, claims))],
      ['other run', () => receipts.verify('STORE', { ...run, runId: 'run-2' }, claims, receipt)],
      ['other workflow', () => receipts.verify('STORE', { ...run, workflowId: 'backup-u2' }, claims, receipt)],
      ['other pair', () => receipts.verify('STORE', run, { ...claims, 'pair.ED25519': 'p3' }, receipt)],
      ['other user', () => receipts.verify('STORE', run, { ...claims, userId: 'u2' }, receipt)],
      ['made-up MAC', () => receipts.verify('STORE', run, claims, { ...receipt, mac: 'a'.repeat(64) })],
      ['key of another ring', () => receipts.verify('STORE', run, claims, new StepReceipts(ring('s1', 's1')).issue('STORE', run, claims))],
      ['unknown key id', () => receipts.verify('STORE', run, claims, { ...receipt, keyId: 's9' })],
    ];
    for (const [name, check] of cases) {
      const error = refusal(check);
      expect(error.redoStep, name).toBe('STORE');
      expect(error.retryable, name).toBe(false);
      expect(error.details, name).toEqual([{ redoStep: 'STORE' }]);
      expect(redoStepOf(error.details), name).toBe('STORE');
      expect(error.message, name).toContain('retry the run to run STORE again');
    }
  });

  it('rotates with the sealing ring: a receipt of the retired key verifies while that key stays in the ring', () => {
    const before = { activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) };
    const receipt = new StepReceipts(before).issue('HAND_OVER', run, claims);
    const after = new StepReceipts({ activeKeyId: 's2', keys: new Map([...before.keys, ['s2', randomBytes(32)]]) });
    expect(() => after.verify('HAND_OVER', run, claims, receipt)).not.toThrow();
    expect(after.issue('HAND_OVER', run, claims).keyId).toBe('s2');
  });

  it('is not the sealing key: the MAC key is derived, so a receipt made with the raw sealing key fails', async () => {
    const { createHmac } = await import('node:crypto');
    const raw = keys.keys.get('s1')!;
    const mac = createHmac('sha256', raw).update('anything').digest('hex');
    expect(refusal(() => receipts.verify('STORE', run, claims, { step: 'STORE', keyId: 's1', mac })).redoStep).toBe('STORE');
  });
});
