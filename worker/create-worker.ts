import { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { migrateWhenReachable } from '../db/migrate-when-reachable';
import { CustodianShareRepository } from '../db/custodian-share-repository';
import { BackupModeCheck } from '../activities/backup/backup-mode';
import { createDatabasePool } from '../db/pool';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createBatchActivities } from '../activities/batch/batch-activities';
import { createKeyRotationActivities } from '../activities/rotation/key-rotation-activities';
import { createDrillActivities } from '../activities/drill/drill-activities';
import { createActivities } from '../activities';
import { createRecoveryActivities } from '../activities/recovery/recovery-activities';
import { HttpSigningShareHandover } from '../adapters/http/signing-share-handover';
import { TemporalUserRunGuard } from '../activities/user-run-guard';
import { HttpCredentialsSource } from '../adapters/credentials/credentials-source';
import { CachedCredentialsSource } from '../adapters/credentials/cached-credentials-source';
import { createCiphertextStores } from '../adapters/stores/ciphertext-store-factory';
import { PortalClient } from '../adapters/portal/portal-client';
import { NO_PORTAL_RATE_LIMIT, SharedPortalRateLimiter } from '../adapters/portal/portal-rate-limiter';
import { currentActivitySignal } from '../activities/activity-boundary';
import { RunPortalDemand } from '../activities/run-portal-demand';
import { createKmsProvider } from '../adapters/kms/kms-provider-factory';
import { VaultAccessCheck } from '../adapters/vault/vault-access-check';
import { sealingDeps } from '../activities/step-receipts';
import { createReceiptCheckActivities } from '../activities/receipt-checks';
import { createApprovalActivities } from '../activities/approvals/approval-activities';
import { VaultOperatorSignatures } from '../adapters/vault/operator-signatures';
import { vaultAuth } from '../adapters/vault/vault-connection';
import { createAuditActivities } from '../activities/audit/audit-activities';
import { createEjectActivities } from '../activities/eject/eject-activities';
import { EjectReleases } from '../db/eject-releases';
import { AuditTrail } from '../db/audit-trail';
import { createRotationCensus } from '../activities/rotation/rotation-census';
import { userSourcePages } from '../activities/user-source';
import { backupDataConverter } from '../codec/data-converter';
import { activityMetricsInterceptor } from '../metrics/activity-metrics-interceptor';
import { countParkedBackups } from '../metrics/parked-backups';
import { NO_WORKER_METRICS, type WorkerMetrics } from '../metrics/service-metrics';
import { connectionOptions } from '../config/temporal-config';
import { connectWhenReachable } from './connect-when-reachable';
import type { WorkerConfig } from './config';
import { checkKmsKey } from './preflight';
import { WORKFLOWS_PATH } from './workflows-path';

/**
 * Activities heartbeat this often, and the worker sends each heartbeat at once (its throttle is set
 * to the same interval), so the steps' 8 s heartbeat timeout leaves room for three misses. Only a
 * call longer than this heartbeats at all (a billable action each).
 */
export const HEARTBEAT_INTERVAL_MS = 2_000;
/** Clock skew allowed between us and Portal when telling a run's orphaned pairs apart. */
const ORPHAN_SCAN_SKEW_MS = 30_000;
/** How long a store may reuse a user's credentials within one step (see CachedCredentialsSource). */
const CREDENTIALS_MEMO_MS = 5_000;
/** How long one confirmation of BACKUP_MODE against Portal's environment holds. */
const MODE_CHECK_TTL_MS = 10 * 60_000;
/** How long one good answer of the KMS (Vault or AWS KMS) to the workers' credentials holds (a refusal is checked again on every step-1 attempt). */
const VAULT_ACCESS_OK_FOR_MS = 30_000;
/** Looks for a custodian share that has not arrived (about 15 s of backoff) before parking. */
const MAX_CUSTODIAN_WAIT_ATTEMPTS = 5;
/** Read-backs that may find a just-stored ciphertext missing (about 4 minutes of backoff) before parking. */
const MAX_NOT_READABLE_ATTEMPTS = 10;

/** Wires the activities' dependencies from configuration (Portal-Managed storage). */
export function createActivityDeps(
  config: WorkerConfig,
  database?: Pool,
  metrics: WorkerMetrics = NO_WORKER_METRICS,
  /** Whom each activity's Portal requests serve (connected to the worker's client once it exists). */
  portalDemand = new RunPortalDemand(),
) {
  const limiter = config.portalLimits && database ? new SharedPortalRateLimiter(database, config.portalLimits) : NO_PORTAL_RATE_LIMIT;
  const portal = new PortalClient(config.portal, metrics.portal, limiter, currentActivitySignal, () => portalDemand.current());
  const credentials = new HttpCredentialsSource(config.credentials, metrics.credentials);
  const storeCredentials = new CachedCredentialsSource(credentials, CREDENTIALS_MEMO_MS);
  const transit = createKmsProvider(config.kms, { metrics: metrics.vault });
  // The store's puts and read-backs in one attempt share one credentials load.
  const copies = createCiphertextStores(config.stores, { portal, credentials: storeCredentials, ...(database ? { database } : {}) });
  return {
    credentials,
    portal,
    transit,
    vaultAccess: new VaultAccessCheck(transit, VAULT_ACCESS_OK_FOR_MS, (denied) => metrics.vaultAccess(denied)),
    // The primary store (key rotation and coverage read it), and every copy (CIPHERTEXT_STORES).
    store: copies[0]!,
    copies,
    ...sealingDeps(config.sealingKeys),
    modeCheck: new BackupModeCheck(config.mode, portal, MODE_CHECK_TTL_MS),
    ...(config.mode === 'self-managed' && database ? { custodianShares: new CustodianShareRepository(database) } : {}),
    maxCustodianWaitAttempts: MAX_CUSTODIAN_WAIT_ATTEMPTS,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    orphanScanSkewMs: ORPHAN_SCAN_SKEW_MS,
    maxNotReadableAttempts: MAX_NOT_READABLE_ATTEMPTS,
    drillMetrics: metrics.drill,
  };
}

/** Whether this configuration keeps anything in the company's PostgreSQL. */
export function needsDatabase(config: WorkerConfig): boolean {
  return config.stores.some((store) => store.kind === 'postgres') || config.mode === 'self-managed' || config.portalLimits !== undefined;
}

/**
 * Opens the company database whenever DATABASE_URL is set (the audit trail lives there, whatever
 * else needs it) and applies pending migrations, waiting for a database that is down (the caller
 * ends the pool).
 */
export async function openDatabase(config: WorkerConfig, warn: (message: string) => void = () => undefined): Promise<Pool | undefined> {
  if (!config.databaseUrl) return undefined;
  const pool = createDatabasePool(config.databaseUrl, { onIdleConnectionError: (error) => warn(`an idle database connection failed: ${error.message}`) });
  await migrateWhenReachable(pool, warn);
  return pool;
}

export async function createBackupWorker(
  config: WorkerConfig,
  connection: NativeConnection,
  warn: (message: string) => void = () => undefined,
  database?: Pool,
  /** The service's metrics (METRICS_ADDRESS); none by default. */
  metrics: WorkerMetrics = NO_WORKER_METRICS,
): Promise<Worker> {
  if (needsDatabase(config) && !database) throw new Error('this configuration needs the database: open it with openDatabase(config)');
  const portalDemand = new RunPortalDemand();
  const deps = createActivityDeps(config, database, metrics, portalDemand);
  if (!database) warn('no DATABASE_URL: the audit trail is off (recordAuditEvent records nothing); set DATABASE_URL in production');
  const dataConverter = backupDataConverter(config.codecKeys, { worker: true });
  await checkKmsKey(deps.transit, warn);
  // The batch's activities query visibility and await runs through the worker's own connection.
  const temporal = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  portalDemand.connect(temporal);
  const runGuard = new TemporalUserRunGuard(temporal);
  metrics.observeParkedBackups(config.temporal.taskQueue, () => countParkedBackups(temporal, config.temporal.taskQueue));
  const recoveryActivities = createRecoveryActivities({
    ...deps,
    runGuard,
    ...(config.signingShares ? { handover: new HttpSigningShareHandover(config.signingShares) } : {}),
  });
  const userSource = {
    ...(config.credentials.authHeader ? { authHeader: config.credentials.authHeader } : {}),
    allowedSourceOrigins: config.batchSourceOrigins,
  };
  const batchActivities = createBatchActivities({ temporal, heartbeatIntervalMs: deps.heartbeatIntervalMs, ...userSource });
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...(config.workflowBundlePath
      ? { workflowBundle: { codePath: config.workflowBundlePath } }
      : { workflowsPath: WORKFLOWS_PATH }),
    activities: {
      ...createActivities({ ...deps, runGuard }),
      ...recoveryActivities,
      ...batchActivities,
      ...createDrillActivities({ ...deps, selfManaged: config.mode === 'self-managed' }),
      ...createKeyRotationActivities({ ...deps, temporal, ...(database ? { database } : {}) }),
      ...createRotationCensus({ ...deps, sourcePages: userSourcePages(userSource) }),
      ...createReceiptCheckActivities(deps.receipts),
      ...createApprovalActivities(approvalDeps(config)),
      ...createAuditActivities({ heartbeatIntervalMs: deps.heartbeatIntervalMs, receipts: deps.receipts, ...(database ? { auditTrail: new AuditTrail(database) } : {}) }),
      ...createEjectActivities({
        ...deps,
        // A release can be collected for as long as a request may wait for its approvals.
        releaseTtlMs: config.approvals.ttlMs,
        ...(database ? { database: { releases: new EjectReleases(database), auditTrail: new AuditTrail(database) } } : {}),
      }),
    },
    dataConverter,
    ...(config.versioning.enabled
      ? {
          // Every workflow is PINNED to the version it started on unless its code says otherwise
          // (docs/changing-workflows.md): a backup or recovery finishes on the code it began with.
          workerDeploymentOptions: {
            useWorkerVersioning: true,
            version: { deploymentName: config.versioning.deploymentName, buildId: config.versioning.buildId },
            defaultVersioningBehavior: 'PINNED',
          },
        }
      : {}),
    // Every activity attempt, retry and failure (by error type), whichever activity it is.
    interceptors: { activity: [activityMetricsInterceptor(metrics.activities)] },
    shutdownGraceTime: config.shutdownGraceMs,
    // The SDK's throttle would otherwise hold heartbeats back for 0.8 × the heartbeat timeout.
    maxHeartbeatThrottleInterval: HEARTBEAT_INTERVAL_MS,
    defaultHeartbeatThrottleInterval: HEARTBEAT_INTERVAL_MS,
    maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    maxConcurrentWorkflowTaskExecutions: config.maxConcurrentWorkflowTasks,
  });
}

/** The recovery approval step's dependencies: the approval policy, and Vault to verify operators' signatures with. */
export function approvalDeps(config: WorkerConfig) {
  const vault = config.operatorVault;
  return {
    config: config.approvals,
    ...(vault ? { signatures: new VaultOperatorSignatures({ ...vault, mount: config.approvals.keys.mount }, vaultAuth(vault)) } : {}),
  };
}

/**
 * The worker's connection. With `waitWarn` (the worker process), a Temporal that is not reachable
 * yet is waited for, each failed try reported through it (connect-when-reachable.ts); without it
 * (tests, benchmarks), one try.
 */
export function connectWorker(config: WorkerConfig, waitWarn?: (message: string) => void): Promise<NativeConnection> {
  const options = connectionOptions(config.temporal);
  return waitWarn ? connectWhenReachable(options, waitWarn) : NativeConnection.connect(options);
}
