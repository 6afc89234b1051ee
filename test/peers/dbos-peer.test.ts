import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectDbosPeerClient, dbosPeerSchema, enqueueDbosBackup, startDbosPeer } from '../../bench/peers/dbos-peer-process';
import type { ManagedProcess } from '../../stack/managed-process';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { portalView as portalViewOf } from '../support/peer-portal-view';

/**
 * The benchmark's DBOS peer is a durable system, not a fast script: its backups complete through
 * a SIGKILL of its process mid-run, mark no pair twice, and name every pair a lost answer left
 * incomplete (the crash spot-check issue 20 asks of each peer before it is compared with ours).
 */
let env: BackupTestEnv;
let client: DBOSClient;
let peer: ManagedProcess | undefined;
const schema = dbosPeerSchema();
let runs = 0;
const sealingKey = `peer-1:${randomBytes(32).toString('base64')}`;

/** The peer process; a second start on the same schema (and sealing key) recovers what the first left pending. */
function startPeer(): Promise<ManagedProcess> {
  runs += 1;
  const setup = { portalUrl: env.simulator.url, vaultAddr: env.vault.addr, vaultToken: env.vault.token, databaseUrl: inject('databaseUrl'), schema, concurrency: 20 };
  return startDbosPeer({ ...setup, logFile: join(inject('runDir'), `${schema}-${runs}.log`) }, sealingKey);
}

const enqueue = (userId: string) => enqueueDbosBackup(client, userId);

const portalView = (userId: string) => portalViewOf(env, userId);

beforeAll(async () => {
  env = await createBackupTestEnv();
  peer = await startPeer();
  client = await connectDbosPeerClient({ databaseUrl: inject('databaseUrl'), schema });
}, 180_000);

afterAll(async () => {
  await client?.destroy();
  await peer?.stop();
  await env?.close();
});

describe('the DBOS peer (bench/peers/)', () => {
  it('backs up with the same verification: both pairs completed, their ciphertexts stored', async () => {
    const userId = env.seedUser('dbos');
    const result = await (await enqueue(userId)).getResult();
    const view = portalView(userId);
    expect(view.completed).toEqual(Object.values(result.pairIds).sort());
    expect(view.incomplete).toEqual([]);
    for (const pairId of view.completed) expect(env.simulator.state.findPair(env.simulator.state.user(userId)!, pairId)!.clientCipherText).toMatch(/^vault:v\d+:/);
  });

  it('a lost /v1/backup answer: the retry makes new pairs and the result names the orphans', async () => {
    const userId = env.seedUser('dbos-lost');
    env.simulator.faults.add({ route: 'backup', kind: 'lost-response', count: 1, userId });
    const result = await (await enqueue(userId)).getResult();
    const view = portalView(userId);
    expect(view.incomplete.length).toBeGreaterThan(0);
    expect([...result.orphanedPairIds].sort()).toEqual(view.incomplete);
  });

  it('SIGKILLed mid-run and started again: every backup completes, no pair is marked twice, every incomplete pair is named', async () => {
    const inStep1 = env.seedUser('dbos-kill-step1');
    const inStore = [env.seedUser('dbos-kill-store'), env.seedUser('dbos-kill-store')];
    // The stores never answer (until the kill): both are surely in flight when it lands.
    for (const userId of inStore) env.simulator.faults.add({ route: 'storeCipherText', kind: 'hang', count: 1, userId });
    const storesBefore = env.simulator.calls.storeCipherText ?? 0;
    const storing = await Promise.all(inStore.map(enqueue));
    await eventually('both stores to be in flight', async () => ((env.simulator.calls.storeCipherText ?? 0) >= storesBefore + inStore.length ? true : undefined));
    // Then step 1 of a third backup, held 10 s at Portal; the kill follows its arrival at once (the
    // window is this test's own reaction time, not how fast the machine runs the peer's steps).
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 10_000, count: 1, userId: inStep1 });
    const backupsBefore = env.simulator.calls.backup ?? 0;
    const handles = [await enqueue(inStep1), ...storing];
    await eventually('the third backup’s /v1/backup to reach Portal', async () => ((env.simulator.calls.backup ?? 0) > backupsBefore ? true : undefined));
    expect(portalView(inStep1).incomplete, 'the kill lands while the first /v1/backup waits').toEqual([]);
    await peer!.kill();
    // The /v1/backup the kill cut off still completes at Portal (its answer is lost): wait for its
    // pairs before the restart, so the re-run's orphan scan has them to find, however slow the machine.
    // Its 10 s hold, then Portal's handler: 120 s leaves room for a machine many times oversubscribed.
    await eventually('the cut-off /v1/backup to make its pairs', async () => (portalView(inStep1).incomplete.length === 2 ? true : undefined), 120_000);
    peer = await startPeer();
    const results = await Promise.all(handles.map((handle) => handle.getResult()));
    expect(results[0]!.orphanedPairIds).toHaveLength(2);
    for (const result of results) {
      const view = portalView(result.userId);
      expect(view.completed, result.userId).toEqual(Object.values(result.pairIds).sort());
      expect(view.maxMarks, result.userId).toBe(1);
      expect(view.incomplete.every((pairId) => result.orphanedPairIds.includes(pairId)), `${result.userId}: ${view.incomplete.join(', ')} unnamed`).toBe(true);
    }
  }, 300_000);
});
