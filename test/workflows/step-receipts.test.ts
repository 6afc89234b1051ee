import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BackupActivities } from '../../activities';
import { BackupClient } from '../../client/backup-client';
import { backupDataConverter } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { eventually } from '../support/backup-test-env';
import { approvalActivities, mockSigner } from './mocked-worker';
import { currentRun } from '../../activities/backup/backup-receipts';
import { createReceiptCheckActivities } from '../../activities/receipt-checks';
import { createAuditActivities } from '../../activities/audit/audit-activities';
import { StepReceipts } from '../../activities/step-receipts';
import { pairClaims } from '../../domain/step-receipt';

/**
 * The backup workflow's handling of step results without receipts, with mocked activities
 * (TestWorkflowEnvironment over the suite's dev server): which step parks, and which step an
 * operator's retry runs again. The MAC itself is the activities' job (test/unit/step-receipts.test.ts).
 */
let testEnv: TestWorkflowEnvironment;
let backups: BackupClient;
const stops: (() => Promise<void>)[] = [];

const receipt = (step: string) => ({ receipt: { step, keyId: 's1', mac: '0'.repeat(64) } });
const refused = (redoStep: string) =>
  ApplicationFailure.create({ type: 'StepReceiptInvalidError', message: `the ${redoStep} step's result carries a receipt that does not match it`, nonRetryable: true, details: [{ redoStep }] });

beforeAll(async () => {
  testEnv = await TestWorkflowEnvironment.createFromExistingServer({
    address: inject('temporalAddress'),
    client: { dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })) },
  });
});
afterAll(async () => {
  await Promise.all(stops.map((stop) => stop()));
  await testEnv?.teardown();
});

/** The workers' receipts: MARK's own is real (the workflow checks it through the real local activity). */
const workerReceipts = new StepReceipts({ activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) });

/**
 * A worker of its own task queue whose store and mark answer as `script` says, call by call
 * (a mark that succeeds returns its real receipt, unless 'no-receipt'); returns the calls made.
 */
async function workerWith(script: { store: unknown[]; mark: (Error | 'no-receipt' | undefined)[] }) {
  const calls: string[] = [];
  const taskQueue = `receipts-${randomBytes(4).toString('hex')}`;
  const activities: Partial<BackupActivities> = {
    mpcBackup: async () => ({ sealedShares: { keyId: 's1', data: 'sealed' }, pairIds: { SECP256K1: 'p1', ED25519: 'p2' }, orphanedPairIds: [] }),
    encryptShares: async () => {
      calls.push('ENCRYPT');
      const share = (pairId: string) => ({ pairId, ciphertext: `vault:v1:${pairId}`, plaintextSha256: '0'.repeat(64) });
      return { SECP256K1: share('p1'), ED25519: share('p2'), ...receipt('ENCRYPT') } as never;
    },
    storeCiphertexts: async () => {
      calls.push('STORE');
      return script.store.shift() as never;
    },
    markPairsStored: async ({ userId, pairIds }) => {
      calls.push('MARK');
      const outcome = script.mark.shift();
      if (outcome instanceof Error) throw outcome;
      if (outcome === 'no-receipt') return undefined;
      return { receipt: workerReceipts.issue('MARK', currentRun(), pairClaims(userId, pairIds)) };
    },
  };
  const worker = await Worker.create({
    connection: testEnv.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }), { worker: true }),
    activities: { ...activities, ...createReceiptCheckActivities(workerReceipts), ...createAuditActivities({ heartbeatIntervalMs: 1_000, receipts: workerReceipts }), ...approvalActivities() },
  });
  const running = worker.run();
  stops.push(async () => {
    worker.shutdown();
    await running;
  });
  backups = new BackupClient(testEnv.client, taskQueue);
  return calls;
}

async function parkedAt(userId: string) {
  return eventually('the backup to park', async () => {
    const status = await backups.getBackupStatus(userId);
    return status.status === 'NEEDS_ATTENTION' ? status : undefined;
  });
}

/** Starts a backup, checks it parks at `step` with StepReceiptInvalidError, retries it and checks it completes. */
async function parksThenCompletesOnRetry(step: string): Promise<void> {
  const userId = `receipts-${randomBytes(3).toString('hex')}`;
  await backups.startBackupWorkflow(userId);
  const parked = await parkedAt(userId);
  expect(parked.step).toBe(step);
  expect(parked.progress?.lastError).toMatchObject({ step, type: 'StepReceiptInvalidError' });
  await backups.retryBackup(userId, mockSigner('ops-mallory'));
  expect((await backups.waitForBackup(userId)).status).toBe('COMPLETED');
}

describe('step results without receipts (mocked activities)', () => {
  it('a STORE result without a receipt parks at STORE, marks nothing, and a retry runs STORE again', async () => {
    const calls = await workerWith({ store: [null, receipt('STORE')], mark: [undefined] });
    const userId = `receipts-${randomBytes(3).toString('hex')}`;
    await backups.startBackupWorkflow(userId);
    const parked = await parkedAt(userId);
    expect(parked.progress?.lastError).toMatchObject({ step: 'STORE', type: 'StepReceiptInvalidError' });
    expect(calls).toEqual(['ENCRYPT', 'STORE']);
    await backups.retryBackup(userId, mockSigner('ops-mallory'));
    expect((await backups.waitForBackup(userId)).status).toBe('COMPLETED');
    expect(calls).toEqual(['ENCRYPT', 'STORE', 'STORE', 'MARK']);
  });

  it('MARK refusing STORE\'s receipt parks at MARK; the retry runs STORE again, then MARK with the new receipt', async () => {
    const calls = await workerWith({ store: [receipt('STORE'), receipt('STORE')], mark: [refused('STORE'), undefined] });
    await parksThenCompletesOnRetry('MARK');
    expect(calls).toEqual(['ENCRYPT', 'STORE', 'MARK', 'STORE', 'MARK']);
  });

  it('a MARK result without its receipt does not close the run: it parks at MARK, and the retry marks again', async () => {
    const calls = await workerWith({ store: [receipt('STORE')], mark: ['no-receipt', undefined] });
    await parksThenCompletesOnRetry('MARK');
    expect(calls).toEqual(['ENCRYPT', 'STORE', 'MARK', 'MARK']);
  });
});
