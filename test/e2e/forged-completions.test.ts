import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecoveryClient } from '../../client/recovery-client';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveryClient, operatorSigner } from '../support/operators';

/**
 * Someone with Temporal namespace access completes a running step by activity id, with or without
 * the client's codec key (every backend holds it). The step's result then lacks the receipt only a
 * worker can make, so nothing acts on it: no pair is marked, the run parks with
 * StepReceiptInvalidError, and an operator's retry runs the forged step again for real.
 */
let env: BackupTestEnv;
let recoveries: RecoveryClient;

beforeAll(async () => {
  // Portal calls may hang for the whole test: the held step must still be running when it is forged.
  env = await createBackupTestEnv({ portalTimeoutMs: 60_000 });
  await env.startWorker();
  recoveries = approvingRecoveryClient(env.backups.temporal, env.taskQueue);
});
afterAll(() => env?.close());

const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
const signingPairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.signingSharePairs);

/** Waits until `workflowId` has `activityType` running (its first attempt started) and returns its activity id. */
function runningActivity(workflowId: string, activityType: string): Promise<string> {
  return eventually(`${activityType} of ${workflowId} to run`, async () => {
    const { raw } = await env.backups.temporal.workflow.getHandle(workflowId).describe();
    const pending = (raw.pendingActivities ?? []).find((activity) => activity.activityType?.name === activityType);
    return pending?.lastStartedTime ? pending.activityId! : undefined;
  });
}

/** Completes the activity by id as an outsider would: `client` with or without the codec. */
async function forge(client: Client, workflowId: string, activityId: string, result: unknown): Promise<void> {
  await client.activity.complete({ workflowId, activityId }, result);
}

const wellFormedReceipt = (step: string) => ({ receipt: { step, keyId: 'test-seal-1', mac: 'a'.repeat(64) } });

/** Lifts the hold, retries the parked backup, and returns its pairs, checked to be exactly the completed ones at Portal. */
async function retriedAndMarked(userId: string, holdId: number) {
  env.simulator.faults.remove(holdId);
  await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
  const done = await env.backups.waitForBackup(userId);
  expect(done.status).toBe('COMPLETED');
  const marked = pairsOf(userId).filter((pair) => pair.status === 'completed');
  expect(marked.map((pair) => pair.id).sort()).toEqual(Object.values(done.pairIds).sort());
  return marked;
}

/**
 * A user backed up, then a recovery whose `activityType` is held at Portal's (or the backend's)
 * `route` and completed by id with `result` through `client`; returns once the recovery parked.
 */
async function recoveryForgedAt(prefix: string, route: 'markSigningPairs' | 'signingShares', activityType: string, client: Client, result: unknown) {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  await env.backups.waitForBackup(userId);
  const hold = env.simulator.faults.add({ route, kind: 'hang', latencyMs: 60_000, userId });
  const { workflowId } = await recoveries.startRecovery(userId, { freshBackup: false });
  await forge(client, workflowId, await runningActivity(workflowId, activityType), result);
  const parked = await eventually(`recovery of ${userId} to park`, async () => {
    const status = await recoveries.getRecoveryStatus(userId);
    return status.status === 'NEEDS_ATTENTION' ? status : undefined;
  });
  return { userId, hold, parked };
}

describe('a backup step completed by id', () => {
  const cases = [
    { name: 'with null and no codec key', client: () => env.rawClient, result: null, parksAt: 'STORE' },
    { name: 'with a well-formed result encoded with the client codec key', client: () => env.backups.temporal, result: wellFormedReceipt('STORE'), parksAt: 'MARK' },
  ] as const;

  for (const { name, client, result, parksAt } of cases) {
    it(`${name}: nothing is marked, the run parks with StepReceiptInvalidError, and a retry stores and marks for real`, async () => {
      const userId = env.seedUser('forged-store');
      const hold = env.simulator.faults.add({ route: 'storeCipherText', kind: 'hang', latencyMs: 60_000, userId });
      const { workflowId } = await env.backups.startBackupWorkflow(userId);
      await forge(client(), workflowId, await runningActivity(workflowId, 'storeCiphertexts'), result);

      const parked = await waitUntilParked(env.backups, userId);
      expect(parked.step).toBe(parksAt);
      expect(parked.progress?.lastError).toMatchObject({ step: parksAt, type: 'StepReceiptInvalidError' });
      expect(parked.progress?.lastError?.message).toContain('STORE');
      expect(pairsOf(userId).filter((pair) => pair.status === 'completed')).toEqual([]);

      const marked = await retriedAndMarked(userId, hold.id);
      expect(marked.every((pair) => typeof pair.clientCipherText === 'string' && pair.clientCipherText.length > 0)).toBe(true);
    });
  }
});

describe('a backup MARK completed by id', () => {
  const cases = [
    { name: 'with null and no codec key', client: () => env.rawClient, result: null },
    { name: 'with a well-formed MARK receipt encoded with the client codec key', client: () => env.backups.temporal, result: wellFormedReceipt('MARK') },
  ] as const;

  for (const { name, client, result } of cases) {
    it(`${name}: the run does not say COMPLETED; it parks at MARK and a retry marks the pairs`, async () => {
      const userId = env.seedUser('forged-mark');
      // The held request never reaches Portal's state while the fault holds it, so nothing is marked yet.
      const hold = env.simulator.faults.add({ route: 'markPairs', kind: 'hang', latencyMs: 60_000, userId });
      const { workflowId } = await env.backups.startBackupWorkflow(userId);
      await forge(client(), workflowId, await runningActivity(workflowId, 'markPairsStored'), result);

      const parked = await waitUntilParked(env.backups, userId);
      expect(parked.step).toBe('MARK');
      expect(parked.progress?.lastError).toMatchObject({ step: 'MARK', type: 'StepReceiptInvalidError' });
      expect(parked.progress?.lastError?.message).toContain('MARK');

      await retriedAndMarked(userId, hold.id);
    });
  }
});

describe('a recovery MARK_SIGNING completed by id', () => {
  it('does not say COMPLETED: the run parks at MARK_SIGNING and a retry marks the signing pairs', async () => {
    const { userId, hold, parked } = await recoveryForgedAt('forged-mark-signing', 'markSigningPairs', 'markSigningPairsStored', env.rawClient, null);
    expect(parked.progress?.lastError).toMatchObject({ step: 'MARK_SIGNING', type: 'StepReceiptInvalidError' });

    env.simulator.faults.remove(hold.id);
    await recoveries.retryRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.status).toBe('COMPLETED');
    const marked = signingPairsOf(userId).filter((pair) => Object.values(result.signingPairIds).includes(pair.id));
    expect(marked.map((pair) => pair.status)).toEqual(['completed', 'completed']);
  });
});

describe('a recovery hand-over completed by id', () => {
  it('marks no signing pair; the run parks at MARK_SIGNING and a retry hands the shares over again, then marks', async () => {
    const { userId, hold, parked } = await recoveryForgedAt('forged-handover', 'signingShares', 'handOverSigningShares', env.backups.temporal, wellFormedReceipt('HAND_OVER'));
    expect(parked.progress?.lastError).toMatchObject({ step: 'MARK_SIGNING', type: 'StepReceiptInvalidError' });
    const fresh = Object.values(parked.progress?.signingPairIds ?? {});
    expect(fresh).toHaveLength(2);
    expect(signingPairsOf(userId).filter((pair) => fresh.includes(pair.id)).map((pair) => pair.status)).toEqual(['incomplete', 'incomplete']);

    env.simulator.faults.remove(hold.id);
    await recoveries.retryRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.status).toBe('COMPLETED');
    const handedOver = JSON.parse(env.simulator.state.user(userId)!.generateResponse) as Record<string, { id: string }>;
    expect(handedOver.SECP256K1!.id).toBe(result.signingPairIds.SECP256K1);
    const marked = signingPairsOf(userId).filter((pair) => Object.values(result.signingPairIds).includes(pair.id));
    expect(marked.map((pair) => pair.status)).toEqual(['completed', 'completed']);
  });
});
