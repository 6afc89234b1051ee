import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { custodianShareContext } from '../../activities/transit-context';
import type { VaultTransit } from '../../activities/vault-transit';
import { checkCustodianShares, ViolationLog, type HeldCustodianShare } from '../../chaos/invariants';
import { custodianShareForms, secretsOf } from '../../chaos/secret-scan';
import type { WebhookCallRecord } from '../../simulator/custodian-webhook';
import { PortalState, type SimBackupPair } from '../../simulator/portal-state';

/**
 * The campaign's custodian-share checks must catch what they are there to catch: a share
 * acknowledged to Portal but not held, held under the wrong context or with other content, and a
 * marked pair whose custodian half is missing. A stand-in Transit: the "ciphertext" carries its
 * context and plaintext, and decrypts only in that context.
 */
const transit = {
  async decryptBatch(items: { ciphertext: string; context: string }[]) {
    return items.map(({ ciphertext, context }) => {
      const [prefix, version, boundContext, plain] = ciphertext.split(':');
      if (prefix !== 'vault' || version !== 'v1' || boundContext !== context) throw new Error('decrypt failed');
      return Buffer.from(plain!, 'base64');
    });
  },
} as unknown as VaultTransit;

const encrypt = (clientId: string, pairId: string, share: string) =>
  `vault:v1:${custodianShareContext(clientId, pairId)}:${Buffer.from(share, 'utf8').toString('base64')}`;
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function setUp() {
  const state = new PortalState();
  const client = state.seedUser('invariants-user');
  const response = state.createBackupPairs(client, { selfManaged: true });
  const pairs = Object.values(response).map(({ id }) => state.findPair(client, id)!);
  const row = (pair: SimBackupPair, share = pair.custodianShare!, pairId = pair.id): HeldCustodianShare => ({
    backupMethod: 'UNKNOWN',
    pairId: pair.id,
    encryptedShare: encrypt(client.clientId, pairId, share),
    shareSha256: sha256(share),
  });
  const delivery = (pair: SimBackupPair, outcome: 'ok' | 'failed'): WebhookCallRecord => ({
    at: new Date().toISOString(),
    call: 'backup',
    purpose: 'backup',
    userId: client.userId,
    clientId: client.clientId,
    pairId: pair.id,
    outcome,
    durationMs: 1,
  });
  return { client, pairs, row, delivery };
}

describe('checkCustodianShares', () => {
  it('passes when every acknowledged and every marked pair is held as Portal sent it', async () => {
    const { client, pairs, row, delivery } = setUp();
    for (const pair of pairs) pair.status = 'completed';
    const violations = new ViolationLog();
    const result = await checkCustodianShares(client, pairs.map((p) => delivery(p, 'ok')), pairs.map((p) => row(p)), transit, violations);
    expect(violations.details).toEqual([]);
    expect(result).toEqual({ acknowledged: pairs.length, held: pairs.length });
  });

  it('counts an acknowledged share with no row, and a marked pair without its custodian share', async () => {
    const { client, pairs, row, delivery } = setUp();
    pairs[0]!.status = 'completed';
    const violations = new ViolationLog();
    await checkCustodianShares(client, pairs.map((p) => delivery(p, 'ok')), [row(pairs[1]!)], transit, violations);
    expect(violations.counts['custodian-ack-not-held']).toBe(1);
    expect(violations.counts['marked-without-custodian-share']).toBe(1);
    expect(violations.details[0]!.detail).toContain('no row in custodian_shares');
  });

  it('does not count a failed delivery whose share is absent', async () => {
    const { client, pairs, delivery } = setUp();
    const violations = new ViolationLog();
    await checkCustodianShares(client, pairs.map((p) => delivery(p, 'failed')), [], transit, violations);
    expect(violations.total).toBe(0);
  });

  it('counts a row that decrypts to another share, or only in another pair’s context', async () => {
    const { client, pairs, row, delivery } = setUp();
    const [first, second] = pairs as [SimBackupPair, SimBackupPair];
    const violations = new ViolationLog();
    const held = [row(first, `${first.custodianShare!} `), row(second, second.custodianShare!, first.id)];
    await checkCustodianShares(client, [delivery(first, 'ok'), delivery(second, 'ok')], held, transit, violations);
    expect(violations.counts['custodian-ack-not-held']).toBe(2);
    expect(violations.details.map((d) => d.detail).join('\n')).toMatch(/something other than what Portal sent[\s\S]*does not decrypt/);
  });

  it('compares by digest when the simulator did not retain the share', async () => {
    const { client, pairs, row, delivery } = setUp();
    const pair = pairs[0]!;
    const held = [row(pair)];
    delete pair.custodianShare;
    const violations = new ViolationLog();
    await checkCustodianShares(client, [delivery(pair, 'ok')], held, transit, violations);
    expect(violations.total).toBe(0);
  });
});

describe('custodian shares count as secrets', () => {
  it('the string as sent, its base64 and its inner share material', () => {
    const { client, pairs } = setUp();
    const share = pairs[0]!.custodianShare!;
    const inner = (JSON.parse(share) as { custodianShare: string }).custodianShare;
    expect(custodianShareForms(share)).toEqual([share, Buffer.from(share).toString('base64'), inner]);
    expect(secretsOf(client)).toEqual(expect.arrayContaining([share, inner]));
  });
});
