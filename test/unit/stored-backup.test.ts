import { describe, expect, it } from 'vitest';
import { newestCompletedPairs, openStoredBackup } from '../../adapters/stores/stored-backup';
import type { PortalClientInfo } from '../../adapters/portal/portal-client';
import { NoCompletedBackupError } from '../../domain/errors';

const pair = (id: string, status: string, createdAt?: string) => ({ id, status, ...(createdAt ? { createdAt } : {}) });
const client = (secp: ReturnType<typeof pair>[], ed: ReturnType<typeof pair>[]): PortalClientInfo => ({
  id: 'client-1',
  wallets: [
    { id: 'w1', curve: 'SECP256K1', backupSharePairs: secp, signingSharePairs: [] },
    { id: 'w2', curve: 'ED25519', backupSharePairs: ed, signingSharePairs: [] },
  ],
});

describe('newestCompletedPairs', () => {
  it('takes the newest completed pair per curve, ignoring newer incomplete ones', () => {
    const info = client(
      [pair('s-old', 'completed', '2026-01-01T00:00:00Z'), pair('s-new', 'COMPLETED', '2026-02-01T00:00:00Z'), pair('s-newest', 'incomplete', '2026-03-01T00:00:00Z')],
      [pair('e-new', 'completed', '2026-02-01T00:00:00Z'), pair('e-undated', 'completed')],
    );
    expect(newestCompletedPairs('u1', info)).toEqual({ SECP256K1: 's-new', ED25519: 'e-new' });
  });

  it('refuses a user with a curve that has no completed pair', () => {
    const info = client([pair('s1', 'completed', '2026-01-01T00:00:00Z')], [pair('e1', 'incomplete', '2026-01-01T00:00:00Z')]);
    expect(() => newestCompletedPairs('u1', info)).toThrow(NoCompletedBackupError);
    expect(() => newestCompletedPairs('u1', info)).toThrow(/no completed backup for ED25519/);
  });
});

describe('openStoredBackup', () => {
  const pairIds = { SECP256K1: 's1', ED25519: 'e1' };
  const plaintext = (value: unknown) => ({ plaintext: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)) });

  it('rebuilds the /v1/backup response when each ciphertext holds its own pair’s {id, share}', async () => {
    const transit = { decryptEach: async () => [plaintext({ id: 's1', share: 'c2hhcmU=' }), plaintext({ id: 'e1', share: 'ZWQ=' })] };
    const opened = await openStoredBackup(transit, 'u1', pairIds, { SECP256K1: 'vault:v1:a', ED25519: 'vault:v1:b' });
    expect(opened.shares).toEqual({ SECP256K1: { id: 's1', share: 'c2hhcmU=' }, ED25519: { id: 'e1', share: 'ZWQ=' } });
  });

  it('names every problem: not decrypting, not JSON, not a share, another pair’s share', async () => {
    const cases: [({ plaintext: Buffer } | { error: string })[], RegExp][] = [
      [[{ error: 'cipher: message authentication failed' }, plaintext({ id: 'e1', share: 'ZWQ=' })], /does not decrypt in the context of user u1 and pair s1/],
      [[plaintext('not json'), plaintext({ id: 'e1', share: 'ZWQ=' })], /not JSON/],
      [[plaintext({ id: 's1', share: 'ZWQ=', extra: 1 }), plaintext({ id: 'e1', share: 'ZWQ=' })], /not a backup share/],
      [[plaintext({ id: 's1', share: 'ZWQ=' }), plaintext({ id: 's1', share: 'ZWQ=' })], /decrypts to the share of pair s1, not of pair e1/],
    ];
    for (const [results, reason] of cases) {
      const opened = await openStoredBackup({ decryptEach: async () => results }, 'u1', pairIds, { SECP256K1: 'a', ED25519: 'b' });
      expect(opened.shares).toBeUndefined();
      expect(opened.problems.map((problem) => problem.reason).join('; ')).toMatch(reason);
    }
  });
});
