import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { PortalClient } from '../../adapters/portal/portal-client';
import { CiphertextConflictError, CiphertextNotFoundError } from '../../domain/errors';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

let simulator: PortalSimulator;
let store: PortalCiphertextStore;

beforeAll(async () => {
  simulator = await startPortalSimulator({ seed: 3 });
  const portal = new PortalClient({ enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 3_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1 << 20 });
  store = new PortalCiphertextStore(portal, new HttpCredentialsSource({ urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`, timeoutMs: 3_000 }));
});
afterAll(() => simulator?.close());

/** A user with one backup's pairs at Portal (as step 1 leaves them). */
async function userWithPairs(userId: string) {
  const client = simulator.state.seedUser(userId);
  const response = await fetch(`${simulator.url}/v1/backup`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ generateResponse: client.generateResponse }),
  });
  const shares = (await response.json()) as Record<'SECP256K1' | 'ED25519', { id: string }>;
  return [
    { curve: 'SECP256K1' as const, pairId: shares.SECP256K1.id, ciphertext: 'vault:v1:secp' },
    { curve: 'ED25519' as const, pairId: shares.ED25519.id, ciphertext: 'vault:v1:ed' },
  ];
}

describe('PortalCiphertextStore', () => {
  it('stores per pair and reads back; a pair with nothing stored is CiphertextNotFoundError', async () => {
    const entries = await userWithPairs('portal-store-1');
    await expect(store.get({ userId: 'portal-store-1' }, entries[0]!.pairId, 'SECP256K1')).rejects.toThrow(CiphertextNotFoundError);
    await store.put({ userId: 'portal-store-1' }, entries, { freshPairs: true });
    expect(await store.get({ userId: 'portal-store-1' }, entries[1]!.pairId, 'ED25519')).toBe('vault:v1:ed');
  });

  it('on a retried attempt: the same ciphertext is not written again; a different one is refused, not overwritten', async () => {
    const entries = await userWithPairs('portal-store-2');
    await store.put({ userId: 'portal-store-2' }, entries, { freshPairs: true });
    const stores = simulator.calls.storeCipherText ?? 0;
    await store.put({ userId: 'portal-store-2' }, entries, { freshPairs: false });
    expect(simulator.calls.storeCipherText ?? 0).toBe(stores);
    const other = entries.map((entry) => ({ ...entry, ciphertext: `${entry.ciphertext}-other` }));
    await expect(store.put({ userId: 'portal-store-2' }, other, { freshPairs: false })).rejects.toThrow(CiphertextConflictError);
    expect(await store.get({ userId: 'portal-store-2' }, entries[0]!.pairId, 'SECP256K1')).toBe('vault:v1:secp');
  });
});
