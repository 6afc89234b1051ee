import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { attachRestateBackup, callRestateBackup, restatePeerUri, sendRestateBackup, startRestatePeer } from '../../bench/peers/restate-peer-process';
import { startRestateServer, type RestateServer } from '../../bench/peers/restate-server';
import { freePortBelow32768 } from '../../stack/free-port';
import type { ManagedProcess } from '../../stack/managed-process';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { portalView as portalViewOf } from '../support/peer-portal-view';

/**
 * The benchmark's Restate peer is a durable system, not a fast script: its backups complete
 * through a SIGKILL of its service process mid-run (the Restate server keeps running and retries
 * what was in flight), mark no pair twice, and name every pair a lost answer left incomplete (the
 * crash spot-check issue 20 asks of each peer before it is compared with ours).
 */
let env: BackupTestEnv;
let server: RestateServer;
let peer: ManagedProcess | undefined;
let servicePort: number;
let runs = 0;
const dir = join(inject('runDir'), `restate-peer-${randomBytes(3).toString('hex')}`);
const sealingKey = `peer-1:${randomBytes(32).toString('base64')}`;

/** The service process; a second start on the same port (and sealing key, and attempts file) serves what the server retries. */
function startPeer(): Promise<ManagedProcess> {
  runs += 1;
  const setup = { portalUrl: env.simulator.url, vaultAddr: env.vault.addr, vaultToken: env.vault.token, servicePort, attemptsFile: join(dir, 'step-attempts.log') };
  return startRestatePeer({ ...setup, logFile: join(dir, `peer-${runs}.log`) }, sealingKey);
}

const portalView = (userId: string) => portalViewOf(env, userId);

beforeAll(async () => {
  env = await createBackupTestEnv();
  server = await startRestateServer(dir);
  servicePort = await freePortBelow32768();
  peer = await startPeer();
  await server.registerDeployment(restatePeerUri(servicePort));
}, 180_000);

afterAll(async () => {
  await peer?.stop();
  await server?.stop();
  await env?.close();
});

describe('the Restate peer (bench/peers/)', () => {
  it('backs up with the same verification: both pairs completed, their ciphertexts stored', async () => {
    const userId = env.seedUser('restate');
    const result = await callRestateBackup(server.ingressUrl, userId);
    const view = portalView(userId);
    expect(view.completed).toEqual(Object.values(result.pairIds).sort());
    expect(view.incomplete).toEqual([]);
    for (const pairId of view.completed) expect(env.simulator.state.findPair(env.simulator.state.user(userId)!, pairId)!.clientCipherText).toMatch(/^vault:v\d+:/);
  });

  it('a lost /v1/backup answer: the retry makes new pairs and the result names the orphans', async () => {
    const userId = env.seedUser('restate-lost');
    env.simulator.faults.add({ route: 'backup', kind: 'lost-response', count: 1, userId });
    const result = await callRestateBackup(server.ingressUrl, userId);
    const view = portalView(userId);
    expect(view.incomplete.length).toBeGreaterThan(0);
    expect([...result.orphanedPairIds].sort()).toEqual(view.incomplete);
  });

  it('SIGKILLed mid-run and started again: every backup completes, no pair is marked twice, every incomplete pair is named', async () => {
    const inStep1 = env.seedUser('restate-kill-step1');
    const inStore = [env.seedUser('restate-kill-store'), env.seedUser('restate-kill-store')];
    // The stores never answer (until the kill): both are surely in flight when it lands.
    for (const userId of inStore) env.simulator.faults.add({ route: 'storeCipherText', kind: 'hang', count: 1, userId });
    const storesBefore = env.simulator.calls.storeCipherText ?? 0;
    for (const userId of inStore) await sendRestateBackup(server.ingressUrl, userId);
    await eventually('both stores to be in flight', async () => ((env.simulator.calls.storeCipherText ?? 0) >= storesBefore + inStore.length ? true : undefined));
    // Then step 1 of a third backup, held 10 s at Portal; the kill follows its arrival at once (the
    // window is this test's own reaction time, not how fast the machine runs the peer's steps).
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 10_000, count: 1, userId: inStep1 });
    const backupsBefore = env.simulator.calls.backup ?? 0;
    await sendRestateBackup(server.ingressUrl, inStep1);
    await eventually('the third backup’s /v1/backup to reach Portal', async () => ((env.simulator.calls.backup ?? 0) > backupsBefore ? true : undefined));
    expect(portalView(inStep1).incomplete, 'the kill lands while the first /v1/backup waits').toEqual([]);
    await peer!.kill();
    // The /v1/backup the kill cut off still completes at Portal (its answer is lost): wait for its
    // pairs before the restart, so the re-run's orphan scan has them to find, however slow the machine.
    // Its 10 s hold, then Portal's handler: 120 s leaves room for a machine many times oversubscribed.
    await eventually('the cut-off /v1/backup to make its pairs', async () => (portalView(inStep1).incomplete.length === 2 ? true : undefined), 120_000);
    peer = await startPeer();
    const results = await Promise.all([inStep1, ...inStore].map((userId) => attachRestateBackup(server.ingressUrl, userId)));
    expect(results[0]!.orphanedPairIds).toHaveLength(2);
    for (const result of results) {
      const view = portalView(result.userId);
      expect(view.completed, result.userId).toEqual(Object.values(result.pairIds).sort());
      expect(view.maxMarks, result.userId).toBe(1);
      expect(view.incomplete.every((pairId) => result.orphanedPairIds.includes(pairId)), `${result.userId}: ${view.incomplete.join(', ')} unnamed`).toBe(true);
    }
  }, 300_000);
});
