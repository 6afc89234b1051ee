/**
 * The parkable run (workflows/parkable-run.ts) under backupWallet and recoverWallet, with mocked
 * activities: an operator's retry and abandon racing on a parked run, a cancel during each step,
 * and operator decisions taken after the worker that parked the run is gone.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RecoveryActivities } from '../../activities/recovery/recovery-activities';
import { abandonUpdate, BackupStatusKey, progressQuery, retryUpdate } from '../../contracts/backup-wallet-api';
import { recoveryProgressQuery } from '../../contracts/recover-wallet-api';
import { pairClaims } from '../../domain/step-receipt';
import { backupWorkflowId, recoveryWorkflowId } from '../../domain/user-id';
import { approvalActivities, backupActivities, gate, mockSigned, mockedWorker, PAIRS, realReceipt, shapedReceipt, testEnvironment, uniqueId, until, type MockedWorker } from './mocked-worker';

let env: TestWorkflowEnvironment;
const cleanups: (() => unknown)[] = [];
/** Gates of held activities: opened before the workers stop (a worker waits for its activities). */
const gates: { open: () => void }[] = [];

function held() {
  const g = gate();
  gates.push(g);
  return g;
}

beforeAll(async () => {
  env = await testEnvironment();
});
afterEach(async () => {
  for (const g of gates.splice(0)) g.open();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await env?.teardown();
});

async function worker(activities: object, taskQueue?: string): Promise<MockedWorker> {
  const started = await mockedWorker(env, activities, taskQueue);
  cleanups.push(() => started.stop());
  return started;
}

function startBackup(taskQueue: string, userId: string) {
  return env.client.workflow.start('backupWallet', { taskQueue, workflowId: backupWorkflowId(userId), args: [{ userId }] });
}

type StartedRun = { workflowId: string; firstExecutionRunId: string };

/** A backup's retry signed by a verified operator (mocked signature: mocked-worker.ts). */
function signedRetry(handle: StartedRun, operator = 'ops-mallory') {
  return { action: mockSigned({ kind: 'backup-retry', workflowId: handle.workflowId, runId: handle.firstExecutionRunId, userId: handle.workflowId.replace(/^backup-/, ''), operator }) };
}

function signedAbandon(handle: StartedRun, reason: string, operator = 'ops-mallory') {
  const userId = handle.workflowId.replace(/^backup-/, '');
  return { reason, action: mockSigned({ kind: 'backup-abandon', workflowId: handle.workflowId, runId: handle.firstExecutionRunId, userId, operator, reason }) };
}

async function parked(handle: WorkflowHandle) {
  return until('the run to park', async () => {
    const progress = await handle.query(progressQuery);
    return progress.status === 'NEEDS_ATTENTION' ? progress : undefined;
  });
}

describe('a parked backup (mocked activities)', () => {
  it('an operator retry and abandon sent together: exactly one is accepted, and the run ends as that one says', async () => {
    const { activities, calls } = backupActivities({ failStore: 1 });
    const { taskQueue } = await worker(activities);
    const handle = await startBackup(taskQueue, uniqueId('race'));
    await parked(handle);
    const [retried, abandoned] = await Promise.allSettled([
      handle.executeUpdate(retryUpdate, { args: [signedRetry(handle)] }),
      handle.executeUpdate(abandonUpdate, { args: [signedAbandon(handle, 'test: racing the retry')] }),
    ]);
    const accepted = [retried, abandoned].filter((outcome) => outcome.status === 'fulfilled');
    expect(accepted).toHaveLength(1);
    const result = await handle.result().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    if (retried.status === 'fulfilled') {
      expect(result.ok).toBe(true);
      expect(calls).toEqual(['MPC_BACKUP', 'ENCRYPT', 'STORE', 'STORE', 'MARK']);
    } else {
      expect(result.ok).toBe(false);
      expect(calls).toEqual(['MPC_BACKUP', 'ENCRYPT', 'STORE']);
      expect((await handle.describe()).typedSearchAttributes.get(BackupStatusKey)).toBe('ABANDONED');
    }
  });

  it.each(['MPC_BACKUP', 'ENCRYPT', 'STORE', 'MARK'] as const)('a cancel while %s is in flight ends the run CANCELLED at that step, and no later step runs', async (step) => {
    const hold = held();
    const { activities, calls } = backupActivities({ holdAt: step, held: hold });
    const { taskQueue } = await worker(activities);
    const handle = await startBackup(taskQueue, uniqueId(`cancel-${step.toLowerCase()}`));
    await hold.entered;
    await handle.cancel();
    const error = await handle.result().then(() => undefined, (failure: unknown) => failure);
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    const progress = await handle.query(progressQuery);
    expect(progress).toMatchObject({ status: 'CANCELLED', step });
    expect((await handle.describe()).typedSearchAttributes.get(BackupStatusKey)).toBe('CANCELLED');
    expect(calls.at(-1)).toBe(step);
  });

  it('a cancel while parked ends the run CANCELLED at the parked step', async () => {
    const { activities } = backupActivities({ failStore: 1 });
    const { taskQueue } = await worker(activities);
    const handle = await startBackup(taskQueue, uniqueId('cancel-parked'));
    await parked(handle);
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await handle.query(progressQuery)).toMatchObject({ status: 'CANCELLED', step: 'STORE' });
  });

  it('operator decisions reach a run parked by a worker that is gone: retry on a new worker completes it', async () => {
    const first = backupActivities({ failStore: 1 });
    const before = await worker(first.activities);
    const handle = await startBackup(before.taskQueue, uniqueId('restart-retry'));
    await parked(handle);
    await before.stop();
    // A new worker process: no cached run, so it replays the history before taking the update.
    const after = backupActivities();
    await worker(after.activities, before.taskQueue);
    const answered = await handle.executeUpdate(retryUpdate, { args: [signedRetry(handle)] });
    expect(answered.status).not.toBe('NEEDS_ATTENTION');
    expect(await handle.result()).toMatchObject({ status: 'COMPLETED', pairIds: PAIRS });
    expect(first.calls).toEqual(['MPC_BACKUP', 'ENCRYPT', 'STORE']);
    // Only the parked step and those after it ran again, on the new worker.
    expect(after.calls).toEqual(['STORE', 'MARK']);
  });

  it('operator decisions after a worker restart: abandon on a new worker closes the run ABANDONED, and a second decision is refused', async () => {
    const before = await worker(backupActivities({ failStore: 1 }).activities);
    const handle = await startBackup(before.taskQueue, uniqueId('restart-abandon'));
    await parked(handle);
    await before.stop();
    const after = backupActivities();
    await worker(after.activities, before.taskQueue);
    await handle.executeUpdate(abandonUpdate, { args: [signedAbandon(handle, 'test: the user left')] });
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(after.calls).toEqual([]);
    await expect(handle.executeUpdate(retryUpdate, { args: [signedRetry(handle)] })).rejects.toThrow();
    expect((await handle.describe()).typedSearchAttributes.get(BackupStatusKey)).toBe('ABANDONED');
  });
});

type RecoveryStepName = 'FIND_BACKUP' | 'DECRYPT' | 'RECOVER' | 'HAND_OVER' | 'MARK_SIGNING';
const SIGNING = { SECP256K1: 's1', ED25519: 's2' };

function recoveryActivities(holdAt: RecoveryStepName, held: ReturnType<typeof gate>) {
  const calls: string[] = [];
  const step = async <T>(name: RecoveryStepName, result: () => T): Promise<T> => {
    calls.push(name);
    if (holdAt === name) {
      held.enter();
      await held.wait;
    }
    return result();
  };
  const activities: Partial<RecoveryActivities> = {
    findRecoverableBackup: () => step('FIND_BACKUP', () => ({ backupPairIds: PAIRS, ciphertexts: { SECP256K1: 'vault:v1:a', ED25519: 'vault:v1:b' } })),
    decryptStoredBackup: () => step('DECRYPT', () => ({ keyId: 's1', data: 'sealed', ...shapedReceipt('DECRYPT') }) as never),
    recoverAtPortal: () => step('RECOVER', () => ({ sealedSigningShares: { keyId: 's1', data: 'sealed' }, signingPairIds: SIGNING, orphanedSigningPairIds: [] })),
    handOverSigningShares: () => step('HAND_OVER', () => shapedReceipt('HAND_OVER') as never),
    markSigningPairsStored: ({ userId }) => step('MARK_SIGNING', () => ({ receipt: realReceipt('MARK_SIGNING', pairClaims(userId, SIGNING)) })),
  };
  return { activities, calls };
}

/** Starts a recovery whose `step` stays in flight, and cancels the run once it is there. */
async function recoveryCancelledAt(step: RecoveryStepName) {
  const hold = held();
  const { activities, calls } = recoveryActivities(step, hold);
  const { taskQueue } = await worker({ ...activities, ...approvalActivities() });
  const userId = uniqueId(`rcancel-${step.toLowerCase()}`);
  const workflowId = recoveryWorkflowId(userId);
  const request = mockSigned({ kind: 'recover-start', workflowId, userId, operator: 'ops-carol' });
  const handle = await env.client.workflow.start('recoverWallet', { taskQueue, workflowId, args: [{ userId, freshBackup: false, request }] });
  await hold.entered;
  await handle.cancel();
  return { handle, calls, hold };
}

describe('a recovery cancelled during each step (mocked activities)', () => {
  it.each(['FIND_BACKUP', 'DECRYPT', 'RECOVER'] as const)('before the point of no return (%s): the run ends CANCELLED there', async (step) => {
    const { handle, calls } = await recoveryCancelledAt(step);
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await handle.query(recoveryProgressQuery)).toMatchObject({ status: 'CANCELLED', step });
    expect(calls.at(-1)).toBe(step);
  });

  it.each(['HAND_OVER', 'MARK_SIGNING'] as const)('after it (%s): the cancel cannot cut the run short, and it completes', async (step) => {
    const { handle, calls, hold } = await recoveryCancelledAt(step);
    hold.open();
    expect(await handle.result()).toMatchObject({ status: 'COMPLETED', signingPairIds: SIGNING });
    expect(calls).toEqual(['FIND_BACKUP', 'DECRYPT', 'RECOVER', 'HAND_OVER', 'MARK_SIGNING']);
  });
});
