/**
 * The service on a real Temporal cluster — temporal-server (scripts/tool-temporal-server.sh) as
 * four processes, frontend, history, matching and worker, on PostgreSQL with SQL visibility — which
 * test/support/global-setup.ts starts beside the dev server. The same helpers and worker wiring as
 * the dev-server tests; only the address differs.
 */
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupClient } from '../../client/backup-client';
import { BatchClient } from '../../client/batch-client';
import { backupDataConverter } from '../../codec/data-converter';
import { NAMESPACE_RETENTION_HOURS } from '../../stack/temporal-cluster';
import { temporalServerVersions } from '../../stack/tool-binaries';
import { SEARCH_ATTRIBUTES } from '../../contracts/backup-wallet-api';
import { loadWorkerConfig } from '../../worker/config';
import { clusterAddress, createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveryClient, operatorSigner } from '../support/operators';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv({ cluster: true });
  await env.startWorker();
});
afterAll(() => env?.close());

const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);

describe('on a Temporal cluster (frontend, history, matching, worker on PostgreSQL)', () => {
  it('is the pinned server, with the namespace’s retention and the backup’s search attributes registered', async () => {
    const connection = await Connection.connect({ address: clusterAddress() });
    try {
      const info = await connection.workflowService.getSystemInfo({});
      expect(info.serverVersion).toBe(temporalServerVersions().server);
      const namespace = await connection.workflowService.describeNamespace({ namespace: 'default' });
      expect(Number(namespace.config?.workflowExecutionRetentionTtl?.seconds)).toBe(NAMESPACE_RETENTION_HOURS * 3600);
      const attributes = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      for (const name of Object.keys(SEARCH_ATTRIBUTES)) {
        expect(attributes.customAttributes?.[name]).toBe(temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD);
      }
    } finally {
      await connection.close();
    }
  });

  it('a backup completes, every pair marked once, and visibility finds it by its search attributes', async () => {
    const userId = env.seedUser('cluster-backup');
    await env.backups.startBackupWorkflow(userId);
    const result = await env.backups.waitForBackup(userId);
    expect(result.status).toBe('COMPLETED');
    const pairs = pairsOf(userId);
    expect(pairs).toHaveLength(2);
    for (const pair of pairs) expect(pair).toMatchObject({ status: 'completed', markCount: 1 });
    const listed = await eventually('the completed backup in visibility', async () =>
      (await env.backups.listBackups({ status: 'completed' })).find((entry) => entry.userId === userId),
    );
    expect(listed).toMatchObject({ status: 'COMPLETED' });
  });

  it('a recovery restores from the completed backup', async () => {
    const recoveries = approvingRecoveryClient(env.backups.temporal, env.taskQueue);
    const userId = env.seedUser('cluster-recover');
    await env.backups.startBackupWorkflow(userId);
    const backup = await env.backups.waitForBackup(userId);
    await recoveries.startRecovery(userId, { freshBackup: false });
    const recovered = await recoveries.waitForRecovery(userId);
    expect(recovered.status).toBe('COMPLETED');
    expect(recovered.backupPairIds).toEqual(backup.pairIds);
    const handedOver = JSON.parse(env.simulator.state.user(userId)!.generateResponse) as Record<string, { id: string }>;
    expect(handedOver.SECP256K1!.id).toBe(recovered.signingPairIds.SECP256K1);
  });

  it('a batch runs across several continue-as-new generations', async () => {
    const batches = new BatchClient(env.backups.temporal, env.taskQueue);
    const userIds = Array.from({ length: 7 }, () => env.seedUser('cluster-batch'));
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 2, backupsPerMinute: 6000, startsPerRun: 3, pageSize: 2 });
    const report = await batches.wait(batchId);
    expect(report).toMatchObject({ status: 'COMPLETED', total: 7, counts: { completed: 7, failed: 0, parked: 0 } });
    expect(report.runs).toBeGreaterThanOrEqual(3);
    for (const userId of userIds) expect(pairsOf(userId).filter((pair) => pair.status === 'completed')).toHaveLength(2);
  });

  it('a backup parked at MARK is retried by the operator and completes without running step 1 again', async () => {
    const userId = env.seedUser('cluster-park');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, body: 'Incorrect API key format', userId });
    await env.backups.startBackupWorkflow(userId);
    const parked = await waitUntilParked(env.backups, userId);
    expect(parked).toMatchObject({ step: 'MARK', execution: 'RUNNING' });
    const listed = await eventually('the parked backup in visibility', async () =>
      (await env.backups.listBackups({ status: 'needs_attention' })).find((entry) => entry.userId === userId),
    );
    expect(listed).toMatchObject({ status: 'NEEDS_ATTENTION', step: 'MARK' });
    env.simulator.faults.clear();
    await env.backups.retryBackup(userId, operatorSigner('ops-alice'));
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    const pairs = pairsOf(userId);
    expect(pairs).toHaveLength(2);
    for (const pair of pairs) expect(pair).toMatchObject({ status: 'completed', markCount: 1 });
  });

  describe('eager workflow start (system.enableEagerWorkflowStart from ops/temporal/dynamic-config.yaml)', () => {
    let connection: NativeConnection;
    let stop: () => Promise<void>;
    beforeAll(async () => {
      ({ nativeConnection: connection, stop } = await env.startWorkerOnConnection());
    });
    afterAll(() => stop?.());

    it('a client on the worker’s NativeConnection gets the first workflow task in its start call', async () => {
      const config = loadWorkerConfig(env.workerEnv);
      const backups = new BackupClient(new Client({ connection, dataConverter: backupDataConverter(config.codecKeys) }), env.taskQueue, { eagerStart: true });
      const userId = env.seedUser('cluster-eager');
      const started = await backups.startBackupWorkflow(userId);
      expect(started).toMatchObject({ userId, alreadyRunning: false, eagerlyStarted: true });
      expect((await backups.waitForBackup(userId)).status).toBe('COMPLETED');
    });
  });
});
