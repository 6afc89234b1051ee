import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpCiphertextStore } from '../../adapters/stores/http-ciphertext-store';
import {
  CiphertextConflictError,
  CiphertextNotFoundError,
  CiphertextStoreRequestError,
  CiphertextStoreUnavailableError,
} from '../../domain/errors';
import { startCompanyCiphertextEndpoint, type CompanyCiphertextEndpoint } from '../support/company-ciphertext-endpoint';

let endpoint: CompanyCiphertextEndpoint;

beforeAll(async () => {
  endpoint = await startCompanyCiphertextEndpoint();
});
afterAll(() => endpoint.close());
beforeEach(() => endpoint.reset());

const store = () =>
  new HttpCiphertextStore({
    writeUrl: endpoint.template,
    readUrl: endpoint.template,
    authHeader: { name: 'Authorization', value: 'Bearer company-token' },
    timeoutMs: 2_000,
  });
const backup = (tag: string) => [
  { curve: 'SECP256K1' as const, pairId: `secp-${tag}`, ciphertext: `vault:v1:secp-${tag}` },
  { curve: 'ED25519' as const, pairId: `ed-${tag}`, ciphertext: `vault:v1:ed-${tag}` },
];

describe('HttpCiphertextStore against an endpoint shaped like Portal’s example backend', () => {
  it('writes both curves in the example backend’s body, with the auth header, and reads each back by pair', async () => {
    await store().put({ userId: 'u1' }, backup('a'), { freshPairs: true });
    expect(endpoint.records.get('u1')).toEqual({
      data: { secp256k1Ciphertext: 'vault:v1:secp-a', ed25519Ciphertext: 'vault:v1:ed-a' },
      backupSharePairIds: { SECP256K1: 'secp-a', ED25519: 'ed-a' },
    });
    expect(endpoint.lastAuth()).toBe('Bearer company-token');
    expect(await store().get({ userId: 'u1' }, 'ed-a', 'ED25519')).toBe('vault:v1:ed-a');
  });

  it('is write-once per pair: the same ciphertexts again write nothing; another ciphertext for a stored pair is refused', async () => {
    expect(await store().put({ userId: 'u1' }, backup('a'), { freshPairs: true })).toEqual({ alreadyStored: [] });
    // The look that found them is their read-back: a retried step does not read them again.
    expect(await store().put({ userId: 'u1' }, backup('a'), { freshPairs: false })).toEqual({ alreadyStored: ['secp-a', 'ed-a'] });
    expect(endpoint.posts()).toBe(1);
    const tampered = backup('a').map((entry) => ({ ...entry, ciphertext: `${entry.ciphertext}-other` }));
    await expect(store().put({ userId: 'u1' }, tampered, { freshPairs: false })).rejects.toThrow(CiphertextConflictError);
    expect((endpoint.records.get('u1') as { data: { secp256k1Ciphertext: string } }).data.secp256k1Ciphertext).toBe('vault:v1:secp-a');
  });

  it('replaces the record of an older backup (other pairs), as that backend keeps the newest per user', async () => {
    await store().put({ userId: 'u1' }, backup('old'), { freshPairs: true });
    await store().put({ userId: 'u1' }, backup('new'), { freshPairs: false });
    expect(await store().get({ userId: 'u1' }, 'secp-new', 'SECP256K1')).toBe('vault:v1:secp-new');
    await expect(store().get({ userId: 'u1' }, 'secp-old', 'SECP256K1')).rejects.toThrow(CiphertextNotFoundError);
  });

  it('maps the endpoint’s answers to typed errors', async () => {
    await expect(store().get({ userId: 'nobody' }, 'p', 'SECP256K1')).rejects.toThrow(CiphertextNotFoundError);
    endpoint.failNext(409);
    await expect(store().put({ userId: 'u1' }, backup('a'), { freshPairs: true })).rejects.toThrow(CiphertextConflictError);
    endpoint.failNext(503);
    await expect(store().put({ userId: 'u1' }, backup('a'), { freshPairs: true })).rejects.toThrow(CiphertextStoreUnavailableError);
    endpoint.failNext(401);
    await expect(store().put({ userId: 'u1' }, backup('a'), { freshPairs: true })).rejects.toThrow(/refused with 401: check CIPHERTEXT_HTTP/);
    endpoint.records.set('u2', { data: { secp256k1Ciphertext: 42 } });
    await expect(store().get({ userId: 'u2' }, 'p', 'SECP256K1')).rejects.toThrow(CiphertextStoreRequestError);
    const closed = new HttpCiphertextStore({ writeUrl: 'http://127.0.0.1:1/{userId}', readUrl: 'http://127.0.0.1:1/{userId}', timeoutMs: 500 });
    await expect(closed.put({ userId: 'u1' }, backup('a'), { freshPairs: true })).rejects.toThrow(CiphertextStoreUnavailableError);
  });
});

describe('HttpCiphertextStore keyed per pair ({pairId} in the URLs)', () => {
  const perPair = () =>
    new HttpCiphertextStore({ writeUrl: `${endpoint.template}?pair={pairId}`, readUrl: `${endpoint.template}?pair={pairId}`, timeoutMs: 2_000 });

  it('writes one record per pair, so a newer backup never touches an older one', async () => {
    await perPair().put({ userId: 'u1' }, backup('old'), { freshPairs: true });
    await perPair().put({ userId: 'u1' }, backup('new'), { freshPairs: true });
    expect(endpoint.posts()).toBe(4);
    expect(await perPair().get({ userId: 'u1' }, 'secp-old', 'SECP256K1')).toBe('vault:v1:secp-old');
    expect(await perPair().get({ userId: 'u1' }, 'ed-new', 'ED25519')).toBe('vault:v1:ed-new');
    const other = backup('old').map((entry) => ({ ...entry, ciphertext: `${entry.ciphertext}-other` }));
    await expect(perPair().put({ userId: 'u1' }, other, { freshPairs: false })).rejects.toThrow(CiphertextConflictError);
    expect(await perPair().get({ userId: 'u1' }, 'secp-old', 'SECP256K1')).toBe('vault:v1:secp-old');
  });
});
