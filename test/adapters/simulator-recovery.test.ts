import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

/**
 * The simulator's side of recovery (shared/portal-api.md, "Recovery and eject"): /v1/recover checks
 * what it is given against the pairs it issued, and its new signing shares replace the old ones for
 * /v1/backup only once they are marked STORED_CLIENT.
 */
let sim: PortalSimulator;
beforeAll(async () => {
  sim = await startPortalSimulator({ seed: 3 });
});
afterAll(() => sim?.close());

async function call(method: string, path: string, apiKey: string, body?: unknown) {
  const response = await fetch(`${sim.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, { id: string; share: string }> & { message?: string }) : undefined };
}

/** A user with one completed backup; returns its key and the /v1/backup response. */
async function backedUp(userId: string) {
  const client = sim.state.seedUser(userId);
  const backup = await call('POST', '/v1/backup', client.apiKey, { generateResponse: client.generateResponse });
  expect(backup.status).toBe(200);
  const shares = backup.body!;
  const marked = await call('PATCH', '/api/v3/clients/me/backup-share-pairs', client.apiKey, {
    status: 'STORED_CLIENT_BACKUP_SHARE',
    backupSharePairIds: [shares.SECP256K1!.id, shares.ED25519!.id],
  });
  expect(marked.status).toBe(204);
  return { apiKey: client.apiKey, shares: { SECP256K1: shares.SECP256K1!, ED25519: shares.ED25519! } };
}

const recover = (apiKey: string, backupResponse: unknown) => call('POST', '/v1/recover', apiKey, { backupResponse: JSON.stringify(backupResponse) });

describe('simulated /v1/recover', () => {
  it('refuses a wrong share, a pair of the other curve, another client’s pair and an incomplete pair', async () => {
    const { apiKey, shares } = await backedUp('sim-recover-checks');
    const other = await backedUp('sim-recover-other');
    const wrongShare = { ...shares, SECP256K1: { id: shares.SECP256K1.id, share: Buffer.from('{"share":"forged"}').toString('base64') } };
    const swapped = { SECP256K1: shares.ED25519, ED25519: shares.SECP256K1 };
    const foreign = { ...shares, ED25519: other.shares.ED25519 };
    for (const body of [wrongShare, swapped, foreign, { SECP256K1: shares.SECP256K1 }]) {
      const answer = await recover(apiKey, body);
      expect(answer.status).toBe(400);
      expect(answer.body?.message).toMatch(/no backup share for (SECP256K1|ED25519) matches/);
    }
    // A pair issued but never marked: Portal ignores it for recovery.
    const client = sim.state.user('sim-recover-checks')!;
    const unmarked = await call('POST', '/v1/backup', apiKey, { generateResponse: client.generateResponse });
    const incomplete = await recover(apiKey, { SECP256K1: unmarked.body!.SECP256K1, ED25519: unmarked.body!.ED25519 });
    expect(incomplete.status).toBe(400);
    expect(incomplete.body?.message).toBe('recover cannot run until backup succeeds');
  });

  it('returns new signing shares that /v1/backup accepts once they are marked STORED_CLIENT, and the old ones no longer', async () => {
    const { apiKey, shares } = await backedUp('sim-recover-ok');
    const before = sim.state.user('sim-recover-ok')!.generateResponse;
    const recovered = await recover(apiKey, shares);
    expect(recovered.status).toBe(200);
    const signing = { SECP256K1: recovered.body!.SECP256K1!, ED25519: recovered.body!.ED25519! };
    const newGenerate = JSON.stringify(signing);
    // Not yet marked: the old signing shares are still the ones Portal uses.
    expect((await call('POST', '/v1/backup', apiKey, { generateResponse: newGenerate })).status).toBe(400);
    expect((await call('POST', '/v1/backup', apiKey, { generateResponse: before })).status).toBe(200);
    const marked = await call('PATCH', '/api/v3/clients/me/signing-share-pairs', apiKey, { status: 'STORED_CLIENT', signingSharePairIds: [signing.SECP256K1.id, signing.ED25519.id] });
    expect(marked.status).toBe(204);
    expect((await call('POST', '/v1/backup', apiKey, { generateResponse: newGenerate })).status).toBe(200);
    expect((await call('POST', '/v1/backup', apiKey, { generateResponse: before })).status).toBe(400);
  });
});
