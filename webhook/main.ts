import { createKmsProvider } from '../adapters/kms/kms-provider-factory';
import { loadOrExit } from '../config/load-or-exit';
import { CustodianShareRepository } from '../db/custodian-share-repository';
import { migrateWhenReachable } from '../db/migrate-when-reachable';
import { createDatabasePool } from '../db/pool';
import { startMetricsServer } from '../metrics/metrics-server';
import { createWebhookMetrics, NO_WEBHOOK_METRICS } from '../metrics/service-metrics';
import { createLogger } from '../logging/logger';
import { checkKmsKey } from '../worker/preflight';
import { loadWebhookConfig } from './config';
import { createWebhookServer } from './webhook-server';

/**
 * The custodian-share webhook process (`npm run webhook`): validates configuration, applies the
 * database migrations, then serves Portal's `POST /backup` and `POST /backup/fetch` until
 * SIGINT/SIGTERM, when it stops accepting and finishes the requests in flight.
 */
async function main(): Promise<void> {
  const config = loadOrExit('mpc-backup webhook', () => loadWebhookConfig());
  const logger = createLogger(config.logLevel, 'mpc-backup-webhook');
  const metrics = config.metricsAddress ? createWebhookMetrics() : NO_WEBHOOK_METRICS;
  // Its own address, never the port Portal calls; listening first, so a taken port fails the start.
  const metricsServer = config.metricsAddress ? await startMetricsServer(config.metricsAddress, () => metrics.scrape()) : undefined;
  const pool = createDatabasePool(config.databaseUrl, {
    // A statement must not outlive Portal's budget for the whole request.
    statementTimeoutMs: config.deadlineMs,
    onIdleConnectionError: (error) => logger.warn({ reason: error.message }, 'an idle database connection failed'),
  });
  const { applied } = await migrateWhenReachable(pool, (message) => logger.warn(message));
  const transit = createKmsProvider(config.kms, { metrics: metrics.vault });
  // The workers decrypt custodian shares with their KMS key: the same key, checked here.
  await checkKmsKey(transit, (message) => logger.warn(message));
  const app = createWebhookServer({
    records: new CustodianShareRepository(pool),
    transit,
    secrets: config.secrets,
    ...(config.allowedSourceIps ? { allowedSourceIps: config.allowedSourceIps } : {}),
    deadlineMs: config.deadlineMs,
    bodyLimitBytes: config.bodyLimitBytes,
    logger,
    metrics,
  });
  const address = await app.listen({ host: config.host, port: config.port });
  logger.info(
    { address, migrationsApplied: applied.length, sourceAllowlist: config.allowedSourceIps?.length ?? 0, metrics: metricsServer?.url },
    'webhook listening',
  );
  const stop = () => {
    logger.info('webhook stopping');
    void app
      .close()
      .then(() => pool.end())
      .then(() => metricsServer?.close())
      .then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`mpc-backup webhook failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
