import { describe, expect, it } from 'vitest';
import { firstVerifiedCopy } from '../../adapters/stores/ciphertext-copies';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { DecryptItem } from '../../adapters/kms/kms-provider';
import { CiphertextNotFoundError, CiphertextStoreUnavailableError, StoredBackupInvalidError } from '../../domain/errors';

const pairIds = { SECP256K1: 'p-secp', ED25519: 'p-ed' };
/** A KMS stand-in: `good:<pair>` decrypts to Portal's `{id, share}` of that pair; anything else does not decrypt. */
const transit = {
  decryptEach: async (items: DecryptItem[]) =>
    items.map((item) => {
      const pairId = item.ciphertext.startsWith('good:') ? item.ciphertext.slice(5) : undefined;
      return pairId ? { plaintext: Buffer.from(JSON.stringify({ id: pairId, share: 'c2hhcmU=' })) } : { error: 'bad ciphertext' };
    }),
};

/** A store holding `ciphertext(pairId)` for each pair, or failing every read with `fails`. */
function store(kind: string, ciphertext: ((pairId: string) => string | undefined) | { fails: Error }): CiphertextStore {
  return {
    kind,
    put: () => Promise.reject(new Error('not written here')),
    get: async (_context, pairId) => {
      if ('fails' in ciphertext) throw ciphertext.fails;
      const held = ciphertext(pairId);
      if (held === undefined) throw new CiphertextNotFoundError(`${kind} has none for ${pairId}`);
      return held;
    },
  };
}
const good = (pairId: string) => `good:${pairId}`;

describe('firstVerifiedCopy (recovery, eject and repair read copies in order)', () => {
  it('takes the first copy that verifies, naming its store and each copy skipped before it', async () => {
    const copy = await firstVerifiedCopy(transit, [store('http', { fails: new CiphertextStoreUnavailableError('down') }), store('altered', () => 'bad'), store('postgres', good)], 'u1', pairIds);
    expect(copy).toMatchObject({ store: 'postgres', ciphertexts: { SECP256K1: 'good:p-secp', ED25519: 'good:p-ed' }, shares: { SECP256K1: { id: 'p-secp' } } });
    expect(copy.skipped).toEqual([expect.stringMatching(/^http: CiphertextStoreUnavailableError/), expect.stringMatching(/^altered: StoredBackupInvalidError/)]);
  });

  it('one store: its own error unchanged', async () => {
    await expect(firstVerifiedCopy(transit, [store('portal', () => undefined)], 'u1', pairIds)).rejects.toThrow(/portal has none for p-secp/);
  });

  it('no copy verifies: a store that is down wins (retry), else "not found" or "invalid" naming every store', async () => {
    const down = new CiphertextStoreUnavailableError('down');
    await expect(firstVerifiedCopy(transit, [store('portal', () => 'bad'), store('postgres', { fails: down })], 'u1', pairIds)).rejects.toBe(down);
    const missing = firstVerifiedCopy(transit, [store('portal', () => undefined), store('postgres', () => undefined)], 'u1', pairIds);
    await expect(missing).rejects.toThrow(CiphertextNotFoundError);
    await expect(missing).rejects.toThrow(/no store holds a copy .*portal: .*postgres: /);
    const invalid = firstVerifiedCopy(transit, [store('portal', () => undefined), store('postgres', () => 'bad')], 'u1', pairIds);
    await expect(invalid).rejects.toThrow(StoredBackupInvalidError);
    await expect(invalid).rejects.toThrow(/no copy .* restores the wallet: portal: .*postgres: /);
  });
});
