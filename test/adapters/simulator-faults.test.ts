import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

/**
 * The simulator's fault pipeline: a fault armed before the handler answers in its place, so the
 * call changes nothing at "Portal" (the e2e retry tests count pairs on that); one armed after it
 * loses the answer of a change that was made.
 */
let sim: PortalSimulator;
beforeAll(async () => {
  sim = await startPortalSimulator({ seed: 5 });
});
afterAll(() => sim?.close());

const pairsOf = (userId: string) => sim.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);

async function backup(userId: string) {
  const client = sim.state.user(userId)!;
  return fetch(`${sim.url}/v1/backup`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ generateResponse: client.generateResponse }),
  });
}

describe('simulator faults', () => {
  for (const fault of [
    { kind: 'status', status: 503 },
    { kind: 'html-error', status: 502 },
    { kind: 'rate-limit', retryAfterSeconds: 1 },
  ] as const) {
    it(`a ${fault.kind} fault before the handler answers ${fault.status ?? 429} and makes no pairs`, async () => {
      const userId = `faults-${fault.kind}`;
      sim.state.seedUser(userId);
      sim.faults.add({ route: 'backup', ...fault, userId, count: 1 });
      const response = await backup(userId);
      await response.text();
      expect(response.status).toBe(fault.kind === 'rate-limit' ? 429 : fault.status);
      expect(pairsOf(userId)).toHaveLength(0);
      // The fault was for one call: the next one makes the pairs.
      expect((await backup(userId)).status).toBe(200);
      expect(pairsOf(userId)).toHaveLength(2);
    });
  }

  it('a lost response after the handler: the pairs are made, the caller gets no answer', async () => {
    const userId = 'faults-lost';
    sim.state.seedUser(userId);
    sim.faults.add({ route: 'backup', kind: 'lost-response', userId, count: 1 });
    await expect(backup(userId)).rejects.toThrow();
    expect(pairsOf(userId)).toHaveLength(2);
  });

  it('a rule naming an unknown route or kind is refused with the valid ones listed, every problem at once', async () => {
    const before = sim.faults.list().length;
    const response = await sim.app.inject({ method: 'POST', url: '/admin/faults', payload: { route: 'mark', kind: 'status-code' } });
    expect(response.statusCode).toBe(400);
    const { message } = response.json() as { message: string };
    expect(message).toMatch(/^bad fault rule: route: must be one of backup, .*markPairs.*, \*; kind: must be one of status, /);
    expect(sim.faults.list()).toHaveLength(before);
  });
});
