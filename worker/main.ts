import { Runtime, type LogLevel } from '@temporalio/worker';
import { ConfigError } from '../config/config-error';
import { loadOrExit } from '../config/load-or-exit';
import { startMetricsServer } from '../metrics/metrics-server';
import { createWorkerMetrics, NO_WORKER_METRICS } from '../metrics/service-metrics';
import { temporalRuntimeMetrics } from '../metrics/temporal-runtime';
import { loadWorkerConfig } from './config';
import { connectWorker, createBackupWorker, openDatabase } from './create-worker';
import { createLogger, temporalLogger } from '../logging/logger';
import type { Pool } from 'pg';
import { AuditTrail } from '../db/audit-trail';
import { VaultAuditSigner } from '../adapters/vault/audit-chain-signer';
import { vaultAuth } from '../adapters/vault/vault-connection';
import { startAuditWatch } from './audit-watch';
import type { WorkerConfig } from './config';
import type { WorkerMetrics } from '../metrics/service-metrics';

/**
 * Worker process: validates configuration, connects to Temporal and polls the backup task queue
 * until SIGINT/SIGTERM, then drains in-flight activities for up to WORKER_SHUTDOWN_GRACE_MS.
 * Run several of these against one task queue to scale out.
 */
async function main(): Promise<void> {
  const config = loadOrExit('mpc-backup worker', () => loadWorkerConfig());
  const logger = createLogger(config.logLevel);
  Runtime.install({
    logger: temporalLogger(logger, config.logLevel.toUpperCase() as LogLevel),
    // The SDK's worker metrics and the workflows' own (metrics/definitions.ts) on TEMPORAL_METRICS_ADDRESS.
    ...(config.metrics.temporalAddress ? { telemetryOptions: { metrics: temporalRuntimeMetrics(config.metrics.temporalAddress) } } : {}),
    // The worker handles SIGINT/SIGTERM itself through the SDK's default shutdown signals.
  });
  const metrics = config.metrics.address ? createWorkerMetrics() : NO_WORKER_METRICS;
  // Listening before anything else, so a taken port stops the worker at once.
  const metricsServer = config.metrics.address ? await startMetricsServer(config.metrics.address, () => metrics.scrape()) : undefined;
  const connection = await connectWorker(config, (message) => logger.warn(message));
  let worker;
  const database = await openDatabase(config, (message) => logger.warn(message));
  try {
    worker = await createBackupWorker(config, connection, (message) => logger.warn(message), database, metrics);
  } catch (error) {
    await connection.close();
    await database?.end();
    if (error instanceof ConfigError) {
      process.stderr.write(`mpc-backup worker: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const auditWatch = watchAuditTrail(config, database, metrics, logger);
  logger.info(
    {
      taskQueue: config.temporal.taskQueue,
      namespace: config.temporal.namespace,
      address: config.temporal.address,
      version: config.versioning.enabled ? `${config.versioning.deploymentName}:${config.versioning.buildId}` : 'unversioned',
      metrics: metricsServer?.url,
      temporalMetrics: config.metrics.temporalAddress ? `http://${config.metrics.temporalAddress}/metrics` : undefined,
    },
    'worker started',
  );
  try {
    await worker.run();
  } finally {
    await auditWatch?.stop();
    await connection.close();
    await database?.end();
    await metricsServer?.close();
    logger.info('worker stopped');
  }
}

/** Seals and verifies the audit trail when this worker has the database and Vault; warns when it cannot. */
function watchAuditTrail(config: WorkerConfig, database: Pool | undefined, metrics: WorkerMetrics, logger: ReturnType<typeof createLogger>): { stop(): Promise<void> } | undefined {
  const { signer, ...intervals } = config.audit;
  if (!database || !signer) {
    logger.warn({}, 'audit trail not sealed or verified by this worker: it needs DATABASE_URL and Vault (KMS_PROVIDER=vault-transit)');
    return undefined;
  }
  return startAuditWatch({ trail: new AuditTrail(database), signer: new VaultAuditSigner(signer, vaultAuth(signer)), ...intervals, metrics, log: logger });
}

main().catch((error: unknown) => {
  process.stderr.write(`mpc-backup worker failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
