import nodeVault from 'node-vault';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createBatchActivities } from '../activities/batch-activities';
import { createActivities } from '../activities';
import { HttpCredentialsSource } from '../activities/credentials-source';
import { PortalCiphertextStore } from '../activities/portal-ciphertext-store';
import { PortalClient } from '../activities/portal-client';
import { AppRoleAuth, StaticTokenAuth, type VaultAuth } from '../activities/vault-auth';
import { VaultTransit } from '../activities/vault-transit';
import { EncryptionCodec } from '../codec/encryption-codec';
import { connectionOptions } from '../config/temporal-config';
import type { WorkerConfig } from './config';
import { checkTransitKey } from './preflight';
import { WORKFLOWS_PATH } from './workflows-path';

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
  return {
    credentials: new HttpCredentialsSource(config.credentials),
    portal,
    transit: new VaultTransit(config.vault, vaultAuth),
    store: new PortalCiphertextStore(portal),
    heartbeatIntervalMs: 3_000,
    orphanScanSkewMs: 30_000,
  };
}

export async function createBackupWorker(
  config: WorkerConfig,
  connection: NativeConnection,
  warn: (message: string) => void = () => undefined,
): Promise<Worker> {
  const deps = createActivityDeps(config);
  const codec = new EncryptionCodec(config.codecKeys);
  await checkTransitKey(deps.transit, { mount: config.vault.mount, keyName: config.vault.keyName }, warn);
  // The batch's activities query visibility and await runs through the worker's own connection.
  const temporal = new Client({ connection, namespace: config.temporal.namespace, dataConverter: { payloadCodecs: [codec] } });
  const batchActivities = createBatchActivities({
    temporal,
    heartbeatIntervalMs: deps.heartbeatIntervalMs,
    ...(config.credentials.authHeader ? { authHeader: config.credentials.authHeader } : {}),
  });
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...(config.workflowBundlePath
      ? { workflowBundle: { codePath: config.workflowBundlePath } }
      : { workflowsPath: WORKFLOWS_PATH }),
    activities: { ...createActivities(deps), ...batchActivities },
    dataConverter: { payloadCodecs: [codec] },
    shutdownGraceTime: config.shutdownGraceMs,
    maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    maxConcurrentWorkflowTaskExecutions: config.maxConcurrentWorkflowTasks,
  });
}

export function connectWorker(config: WorkerConfig): Promise<NativeConnection> {
  return NativeConnection.connect(connectionOptions(config.temporal));
}
