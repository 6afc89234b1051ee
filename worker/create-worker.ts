import nodeVault from 'node-vault';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createBatchActivities } from '../activities/batch-activities';
import { createActivities } from '../activities';
import { HttpCredentialsSource } from '../activities/credentials-source';
import { CachedCredentialsSource } from '../activities/cached-credentials-source';
import { createCiphertextStore } from '../activities/ciphertext-store-factory';
import { PortalClient } from '../activities/portal-client';
import { AppRoleAuth, StaticTokenAuth, type VaultAuth } from '../activities/vault-auth';
import { VaultTransit } from '../activities/vault-transit';
import { ShareSealer } from '../activities/share-sealer';
import { backupDataConverter } from '../codec/data-converter';
import { connectionOptions } from '../config/temporal-config';
import type { WorkerConfig } from './config';
import { checkTransitKey } from './preflight';
import { WORKFLOWS_PATH } from './workflows-path';

/** Activities heartbeat this often; the workflows' heartbeat timeout (15 s) leaves room for several misses. */
export const HEARTBEAT_INTERVAL_MS = 3_000;
/** Clock skew allowed between us and Portal when telling a run's orphaned pairs apart. */
const ORPHAN_SCAN_SKEW_MS = 30_000;
/** How long a store may reuse a user's credentials within one step (see CachedCredentialsSource). */
const CREDENTIALS_MEMO_MS = 5_000;
/** Read-backs that may find a just-stored ciphertext missing (about 4 minutes of backoff) before parking. */
const MAX_NOT_READABLE_ATTEMPTS = 10;

/** Wires the activities' dependencies from configuration (Portal-Managed storage). */
export function createActivityDeps(config: WorkerConfig) {
  const portal = new PortalClient(config.portal);
  const vaultAuth: VaultAuth =
    config.vault.auth.kind === 'token'
      ? new StaticTokenAuth(config.vault.auth.token)
      : new AppRoleAuth(
          nodeVault({
            endpoint: config.vault.endpoint,
            ...(config.vault.namespace ? { namespace: config.vault.namespace } : {}),
            requestOptions: { timeout: config.vault.timeoutMs },
            debug: () => undefined,
          } as nodeVault.VaultOptions),
          config.vault.auth,
        );
  const credentials = new HttpCredentialsSource(config.credentials);
  return {
    credentials,
    portal,
    transit: new VaultTransit(config.vault, vaultAuth),
    // The store's puts and read-backs in one attempt share one credentials load.
    store: createCiphertextStore(config.store, { portal, credentials: new CachedCredentialsSource(credentials, CREDENTIALS_MEMO_MS) }),
    sealer: new ShareSealer(config.sealingKeys),
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    orphanScanSkewMs: ORPHAN_SCAN_SKEW_MS,
    maxNotReadableAttempts: MAX_NOT_READABLE_ATTEMPTS,
  };
}

export async function createBackupWorker(
  config: WorkerConfig,
  connection: NativeConnection,
  warn: (message: string) => void = () => undefined,
): Promise<Worker> {
  const deps = createActivityDeps(config);
  const dataConverter = backupDataConverter(config.codecKeys, { worker: true });
  await checkTransitKey(deps.transit, { mount: config.vault.mount, keyName: config.vault.keyName }, warn);
  // The batch's activities query visibility and await runs through the worker's own connection.
  const temporal = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  const batchActivities = createBatchActivities({
    temporal,
    heartbeatIntervalMs: deps.heartbeatIntervalMs,
    ...(config.credentials.authHeader ? { authHeader: config.credentials.authHeader } : {}),
    allowedSourceOrigins: config.batchSourceOrigins,
  });
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...(config.workflowBundlePath
      ? { workflowBundle: { codePath: config.workflowBundlePath } }
      : { workflowsPath: WORKFLOWS_PATH }),
    activities: { ...createActivities(deps), ...batchActivities },
    dataConverter,
    shutdownGraceTime: config.shutdownGraceMs,
    maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    maxConcurrentWorkflowTaskExecutions: config.maxConcurrentWorkflowTasks,
  });
}

export function connectWorker(config: WorkerConfig): Promise<NativeConnection> {
  return NativeConnection.connect(connectionOptions(config.temporal));
}
