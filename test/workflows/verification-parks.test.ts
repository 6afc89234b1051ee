import { sealingDeps } from '../../activities/step-receipts';
import { randomBytes } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createActivities } from '../../activities';
import { createAuditActivities } from '../../activities/audit/audit-activities';
import { createReceiptCheckActivities } from '../../activities/receipt-checks';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { PortalClient } from '../../adapters/portal/portal-client';
import { BackupModeCheck } from '../../activities/backup/backup-mode';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { BackupClient } from '../../client/backup-client';
import { backupDataConverter } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';
import { eventually } from '../support/backup-test-env';
import { approvalActivities, mockSigner } from './mocked-worker';

/**
 * The workflow with real activities over a store that misbehaves, on the suite's real Temporal dev
 * server (TestWorkflowEnvironment.createFromExistingServer) and real Vault.
 */
let testEnv: TestWorkflowEnvironment;
let simulator: PortalSimulator;
let worker: Worker;
let running: Promise<void>;
let backups: BackupClient;

/** The simulator's company-backend credentials route, as the worker reads it. */
function credentialsFor() {
  return new HttpCredentialsSource({ urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`, timeoutMs: 3_000 });
}

beforeAll(async () => {
  testEnv = await TestWorkflowEnvironment.createFromExistingServer({
    address: inject('temporalAddress'),
    client: { dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })) },
  });
  simulator = await startPortalSimulator({ seed: 5 });
  const portal = new PortalClient({ enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 3_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1 << 20 });
  const honest = new PortalCiphertextStore(portal, credentialsFor());
  // Keeps what it is given, but hands back another ciphertext: a corrupting or swapping store.
  const swapping: CiphertextStore = {
    kind: 'swapping',
    put: (context, ciphertexts, options) => honest.put(context, ciphertexts, options),
    get: async (context, pairId, curve) => (await honest.get(context, pairId, curve)).replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
  };
  const taskQueue = `verify-${randomBytes(4).toString('hex')}`;
  const sealing = sealingDeps({ activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) });
  worker = await Worker.create({
    connection: testEnv.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }), { worker: true }),
    activities: {
      // The audit trail's activity without a database (records nothing).
      ...createAuditActivities({ heartbeatIntervalMs: 1_000, receipts: sealing.receipts }),
      // The workflow checks each audit append's receipt in a local activity.
      ...createReceiptCheckActivities(sealing.receipts),
      // Operator signatures mocked (the real check: test/e2e/).
      ...approvalActivities(),
      ...createActivities({
      credentials: credentialsFor(),
      portal,
      transit: new VaultTransit(
        { endpoint: inject('vaultAddr'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 },
        new StaticTokenAuth(inject('vaultToken')),
      ),
      store: swapping,
      ...sealing,
      heartbeatIntervalMs: 1_000,
      orphanScanSkewMs: 30_000,
      maxNotReadableAttempts: 10,
      modeCheck: new BackupModeCheck('portal-managed', portal, 60_000),
      maxCustodianWaitAttempts: 5,
      }),
    },
  });
  running = worker.run();
  backups = new BackupClient(testEnv.client, taskQueue);
});
afterAll(async () => {
  worker?.shutdown();
  await running;
  await simulator?.close();
  await testEnv?.teardown();
});

describe('a store whose read-back does not match (TestWorkflowEnvironment over the dev server)', () => {
  it('parks the backup at STORE with CiphertextVerificationError and never marks a pair', async () => {
    const userId = `verify-${randomBytes(3).toString('hex')}`;
    simulator.state.seedUser(userId);
    await backups.startBackupWorkflow(userId);
    const parked = await eventually('the backup to park', async () => {
      const status = await backups.getBackupStatus(userId);
      return status.status === 'NEEDS_ATTENTION' ? status : undefined;
    });
    expect(parked.step).toBe('STORE');
    expect(parked.progress?.lastError).toMatchObject({ step: 'STORE', type: 'CiphertextVerificationError' });
    expect(simulator.calls.markPairs ?? 0).toBe(0);
    const pairs = simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs);
    expect(pairs).toHaveLength(2);
    expect(pairs.every((pair) => pair.status === 'incomplete')).toBe(true);
    await backups.abandonBackup(userId, 'test: the store corrupts ciphertexts', mockSigner('ops-mallory'));
  });
});
