import { spawnSync } from 'node:child_process';
import { operatorSigner } from '../support/operators';
import { randomBytes } from 'node:crypto';
import { Client, WorkflowUpdateStage } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { toolBinary } from '../../stack/tool-binaries';
import { BackupFailedError } from '../../client/backup-client';
import { abandonUpdate, retryUpdate } from '../../contracts/backup-wallet-api';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;
let stopWorker: () => Promise<void>;

beforeAll(async () => {
  env = await createBackupTestEnv();
  stopWorker = await env.startWorker();
});
afterAll(() => env?.close());

const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs);

const parked = (userId: string) => waitUntilParked(env.backups, userId);

/** The message of the failure the user's backup run ended with (read with the codec, like every payload). */
const failureMessageOf = async (userId: string): Promise<string> =>
  String(
    (await env.backups.temporal.workflow
      .getHandle(`backup-${userId}`)
      .result()
      .catch((error: { cause?: Error }) => error.cause))?.message,
  );

describe('backup hardening', () => {
  it('a backup started without the payload codec (e.g. from the Web UI) fails at once: nothing reaches Portal, the user is free again', async () => {
    const userId = env.seedUser('plain-start');
    const before = env.simulator.calls.backup ?? 0;
    const handle = await env.rawClient.workflow.start('backupWallet', {
      taskQueue: env.taskQueue,
      workflowId: `backup-${userId}`,
      args: [{ userId }],
    });
    // Its failure message is encoded like every other: read it with the codec.
    const failure = await env.backups.temporal.workflow
      .getHandle(`backup-${userId}`)
      .result()
      .catch((error: { cause?: Error }) => error.cause);
    expect(String(failure?.message)).toContain('was not encrypted with the payload codec');
    const history = await handle.fetchHistory();
    expect(history.events!.some((event) => event.activityTaskScheduledEventAttributes)).toBe(false);
    expect(env.simulator.calls.backup ?? 0).toBe(before);
    // The id is free: a proper start backs the user up.
    const started = await env.backups.startBackupWorkflow(userId);
    expect(started.alreadyRunning).toBe(false);
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
  });

  it('input labelled encrypted that does not decrypt wedges nothing: the start fails at once, an update is refused, the user is free again', async () => {
    const userId = env.seedUser('garbage-start');
    // What anyone with namespace access can send: a payload that claims the codec's encoding.
    const forger = new Client({
      connection: env.rawClient.connection,
      dataConverter: {
        payloadCodecs: [
          {
            encode: async (payloads) =>
              payloads.map(() => ({ metadata: { encoding: Buffer.from('binary/encrypted'), 'encryption-key-id': Buffer.from('test-key-1') }, data: randomBytes(64) })),
            decode: async (payloads) => payloads,
          },
        ],
      },
    });
    const before = env.simulator.calls.backup ?? 0;
    await forger.workflow.start('backupWallet', { taskQueue: env.taskQueue, workflowId: `backup-${userId}`, args: [{ userId }] });
    expect(await failureMessageOf(userId)).toContain('does not decrypt with the workers');
    expect(env.simulator.calls.backup ?? 0).toBe(before);

    // A parked run takes garbage neither as a retry nor as a signal, and still takes the real retry.
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId });
    expect((await env.backups.startBackupWorkflow(userId)).alreadyRunning).toBe(false);
    await parked(userId);
    env.simulator.faults.clear();
    await expect(forger.workflow.getHandle(`backup-${userId}`).executeUpdate('retry', { args: [{}] })).rejects.toThrow();
    await forger.workflow.getHandle(`backup-${userId}`).signal('childParked', { userId, reason: 'x' });
    await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
  });

  it('the Temporal CLI, with --input-meta encoding=binary/encrypted and a random body and no codec key: the run ends at once, and the next proper start backs the user up', async () => {
    const userId = env.seedUser('cli-garbage');
    const before = env.simulator.calls.backup ?? 0;
    const cli = toolBinary('temporal');
    const started = spawnSync(
      cli,
      [
        'workflow', 'start',
        '--address', inject('temporalAddress'),
        '--task-queue', env.taskQueue,
        '--type', 'backupWallet',
        '--workflow-id', `backup-${userId}`,
        '--input', randomBytes(48).toString('base64'),
        '--input-base64',
        '--input-meta', 'encoding=binary/encrypted',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(started.status, started.stderr).toBe(0);
    expect(await failureMessageOf(userId)).toContain('does not decrypt with the workers');
    expect(env.simulator.calls.backup ?? 0).toBe(before);
    const proper = await env.backups.startBackupWorkflow(userId);
    expect(proper.alreadyRunning).toBe(false);
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
  });

  it('a backup under a workflow id that is not its user\'s is refused at its first step, before Portal is asked', async () => {
    const userId = env.seedUser('wrong-id');
    const before = env.simulator.calls.backup ?? 0;
    const handle = await env.backups.temporal.workflow.start('backupWallet', {
      taskQueue: env.taskQueue,
      workflowId: `backup-${userId}-second`,
      args: [{ userId }],
    });
    const failure = await handle.result().catch((error: { cause?: Error & { type?: string } }) => error.cause);
    expect(failure).toMatchObject({ type: 'WorkflowIdMismatchError' });
    expect(String(failure?.message)).toContain(`not "backup-${userId}"`);
    expect(env.simulator.calls.backup ?? 0).toBe(before);
  });

  it('an unencrypted update to a parked backup is refused, and the run still takes the real one', async () => {
    const userId = env.seedUser('plain-update');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId });
    await env.backups.startBackupWorkflow(userId);
    await parked(userId);
    env.simulator.faults.clear();
    await expect(env.rawClient.workflow.getHandle(`backup-${userId}`).executeUpdate('retry', { args: [{}] })).rejects.toThrow();
    await env.rawClient.workflow.getHandle(`backup-${userId}`).signal('anything', { some: 'input' });
    await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
  });

  it('retry and abandon delivered together: exactly one is accepted', async () => {
    const userId = env.seedUser('race');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId });
    await env.backups.startBackupWorkflow(userId);
    await parked(userId);
    env.simulator.faults.clear();
    // With no worker polling, both updates wait at the server and reach the next worker in one task.
    await stopWorker();
    const handle = env.backups.temporal.workflow.getHandle(`backup-${userId}`);
    // Each signed by its own operator (unsigned ones are refused by the validators).
    const target = { workflowId: `backup-${userId}`, runId: (await handle.describe()).runId, userId };
    const retryAction = await operatorSigner('ops-alice').sign({ kind: 'backup-retry', ...target });
    const abandonAction = await operatorSigner('ops-bob').sign({ kind: 'backup-abandon', ...target, reason: 'operator-b gives up' });
    const started = Promise.all([
      handle.startUpdate(retryUpdate, { args: [{ action: retryAction } as never], waitForStage: WorkflowUpdateStage.ACCEPTED }),
      handle.startUpdate(abandonUpdate, { args: [{ reason: 'operator-b gives up', action: abandonAction } as never], waitForStage: WorkflowUpdateStage.ACCEPTED }),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    stopWorker = await env.startWorker();
    // A handle comes back for a refused update too; its result says whether it was accepted.
    const [retry, abandon] = (await Promise.allSettled((await started).map((update) => update.result()))) as [PromiseSettledResult<unknown>, PromiseSettledResult<unknown>];
    expect([retry, abandon].filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const refused = [retry, abandon].find((outcome) => outcome.status === 'rejected') as PromiseRejectedResult;
    // Refused by its validator while the other's signature is checked, or once the other's decision is taken.
    expect(String(refused.reason?.cause?.message ?? refused.reason?.message)).toMatch(/already has an operator decision|whose signature is being checked/);
    if (retry.status === 'fulfilled') {
      expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    } else {
      await expect(env.backups.waitForBackup(userId)).rejects.toMatchObject({ reasonType: 'BackupAbandoned' });
    }
  });

  it('names the pairs made by a lost step-1 response even when step 1 finally fails', async () => {
    const userId = env.seedUser('orphan-fail');
    env.simulator.faults.add({ route: 'backup', kind: 'lost-response', count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    // The first call made pairs and lost its answer; the retry is refused for good.
    await eventually('the lost response', async () => (pairsOf(userId).length === 2 ? true : undefined));
    env.simulator.faults.add({ route: 'backup', kind: 'status', status: 403, userId });
    const failure = await env.backups.waitForBackup(userId).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BackupFailedError);
    const orphaned = pairsOf(userId).map((pair) => pair.id);
    expect(orphaned).toHaveLength(2);
    for (const pairId of orphaned) expect((failure as BackupFailedError).message).toContain(pairId);
    expect((failure as BackupFailedError).message).toContain('orphaned pairs left incomplete at Portal');
    env.simulator.faults.clear();
  });
});
