/**
 * Eager workflow start: a backend that runs a worker starts backups through a client on that
 * worker's NativeConnection, and the server hands the first workflow task straight back.
 */
import { Client, Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BackupClient } from '../../client/backup-client';
import { backupDataConverter } from '../../codec/data-converter';
import { loadWorkerConfig } from '../../worker/config';
import { createBackupTestEnv, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;
let connection: NativeConnection;

beforeAll(async () => {
  env = await createBackupTestEnv();
  connection = (await env.startWorkerOnConnection()).nativeConnection;
});
afterAll(() => env?.close());

describe('eager workflow start', () => {
  it('a client on the worker’s NativeConnection starts a backup eagerly, and it completes', async () => {
    const config = loadWorkerConfig(env.workerEnv);
    const backups = new BackupClient(new Client({ connection, dataConverter: backupDataConverter(config.codecKeys) }), env.taskQueue, { eagerStart: true });
    const userId = env.seedUser('eager');
    const started = await backups.startBackupWorkflow(userId);
    expect(started).toMatchObject({ userId, alreadyRunning: false, eagerlyStarted: true });
    expect((await backups.waitForBackup(userId)).status).toBe('COMPLETED');
    // A second start while none runs is a new run; one while it runs is the same run, not eager.
    const again = await backups.startBackupWorkflow(userId);
    const joined = await backups.startBackupWorkflow(userId);
    expect(joined).toMatchObject({ runId: again.runId, alreadyRunning: true });
    expect(joined.eagerlyStarted).toBeUndefined();
    await backups.waitForBackup(userId);
  });

  it('is refused on a plain gRPC connection (no worker to hand the task to)', async () => {
    const plain = await Connection.connect({ address: inject('temporalAddress') });
    try {
      const config = loadWorkerConfig(env.workerEnv);
      const backups = new BackupClient(new Client({ connection: plain, dataConverter: backupDataConverter(config.codecKeys) }), env.taskQueue, { eagerStart: true });
      await expect(backups.startBackupWorkflow(env.seedUser('eager-plain'))).rejects.toThrow(/NativeConnection/);
    } finally {
      await plain.close();
    }
  });
});
