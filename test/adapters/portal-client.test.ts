import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortalClient, type PortalClientConfig } from '../../adapters/portal/portal-client';
import {
  PortalAuthError,
  PortalContractError,
  PortalNotFoundError,
  PortalRequestRejectedError,
  PortalUnavailableError,
} from '../../domain/errors';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

let simulator: PortalSimulator;
let portal: PortalClient;
let portalConfig: PortalClientConfig;

beforeAll(async () => {
  simulator = await startPortalSimulator();
  portalConfig = {
    enclaveUrl: simulator.url,
    apiUrl: simulator.url,
    timeoutMs: 2_000,
    storeCipherTextMethod: 'POST',
    maxResponseBytes: 64 * 1024,
  };
  portal = new PortalClient(portalConfig);
});
afterAll(() => simulator?.close());

function seed(userId: string) {
  return simulator.state.seedUser(userId);
}

describe('PortalClient against the simulator', () => {
  it('runs the backup flow’s calls and reads the client object', async () => {
    const client = seed('flow');
    const shares = await portal.backup(client.apiKey, client.generateResponse);
    expect(Object.keys(shares)).toEqual(['SECP256K1', 'ED25519']);
    await portal.storeCipherText(client.apiKey, shares.SECP256K1.id, 'vault:v1:abc');
    expect(await portal.getCipherText(client.apiKey, shares.SECP256K1.id)).toBe('vault:v1:abc');
    await portal.markBackupPairsStored(client.apiKey, [shares.SECP256K1.id, shares.ED25519.id]);
    const info = await portal.getClient(client.apiKey);
    const pairs = info.wallets.flatMap((w) => w.backupSharePairs);
    expect(pairs.map((p) => p.status)).toEqual(['completed', 'completed']);
  });

  it('stores with PATCH when configured so', async () => {
    const client = seed('patch');
    const patching = new PortalClient({ ...portalConfig, storeCipherTextMethod: 'PATCH' });
    const shares = await patching.backup(client.apiKey, client.generateResponse);
    await patching.storeCipherText(client.apiKey, shares.ED25519.id, 'vault:v1:patched');
    expect(simulator.state.findPair(client, shares.ED25519.id)!.clientCipherText).toBe('vault:v1:patched');
  });

  it.each([
    ['a missing curve', { SECP256K1: { id: 'a', share: 'YQ==' } }, /ED25519/],
    ['a missing id', { SECP256K1: { share: 'YQ==' }, ED25519: { id: 'b', share: 'YQ==' } }, /SECP256K1\.id/],
    ['a non-base64 share', { SECP256K1: { id: 'a', share: 'not base64!' }, ED25519: { id: 'b', share: 'YQ==' } }, /base64/],
    ['the same id for both curves', { SECP256K1: { id: 'a', share: 'YQ==' }, ED25519: { id: 'a', share: 'YQ==' } }, /same pair id/],
    ['lowercase curve names', { secp256k1Share: { id: 'a', share: 'YQ==' } }, /SECP256K1/],
  ])('rejects a /v1/backup body with %s as a contract violation', async (_what, body, message) => {
    const client = seed(`contract-${Math.random()}`);
    simulator.faults.add({ route: 'backup', kind: 'status', status: 200, body, count: 1, userId: client.userId });
    const attempt = portal.backup(client.apiKey, client.generateResponse);
    await expect(attempt).rejects.toBeInstanceOf(PortalContractError);
    await expect(portal.backup(client.apiKey, client.generateResponse)).resolves.toBeDefined();
    simulator.faults.add({ route: 'backup', kind: 'status', status: 200, body, count: 1, userId: client.userId });
    await expect(portal.backup(client.apiKey, client.generateResponse)).rejects.toThrow(message);
  });

  it('refuses an oversized body instead of buffering it', async () => {
    const client = seed('huge');
    const body = { SECP256K1: { id: 'a', share: 'A'.repeat(200_000) }, ED25519: { id: 'b', share: 'YQ==' } };
    simulator.faults.add({ route: 'backup', kind: 'status', status: 200, body, count: 1, userId: client.userId });
    await expect(portal.backup(client.apiKey, client.generateResponse)).rejects.toBeInstanceOf(PortalContractError);
  });

  it('reads the three error shapes into typed errors with Portal’s words', async () => {
    const client = seed('shapes');
    await expect(portal.backup('', client.generateResponse)).rejects.toThrow(PortalAuthError);
    await expect(portal.backup('no-such-key', client.generateResponse)).rejects.toThrow(/UNAUTHORIZED: Invalid or revoked API key/);
    await expect(portal.backup(client.apiKey, '{"SECP256K1":{"id":"other"}}')).rejects.toThrow(
      /rejected with 400 \(BAD_REQUEST: generateResponse does not hold/,
    );
    await expect(portal.getCipherText(client.apiKey, 'missing-pair')).rejects.toThrow(PortalNotFoundError);
    await expect(portal.markBackupPairsStored(client.apiKey, [])).rejects.toThrow(PortalRequestRejectedError);
  });

  it('a garbled (non-JSON) 200 is worth a retry', async () => {
    const client = seed('garbled');
    simulator.faults.add({ route: 'backup', kind: 'malformed', count: 1, userId: client.userId });
    await expect(portal.backup(client.apiKey, client.generateResponse)).rejects.toBeInstanceOf(PortalUnavailableError);
  });
});
