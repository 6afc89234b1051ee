import { KeysClient } from '../client/keys-client';
import { DrillClient } from '../client/drill-client';
import { Client, Connection } from '@temporalio/client';
import { BackupClient } from '../client/backup-client';
import { BatchClient } from '../client/batch-client';
import { RecoveryClient } from '../client/recovery-client';
import { backupDataConverter } from '../codec/data-converter';
import { loadOrExit } from '../config/load-or-exit';
import { connectionOptions } from '../config/temporal-config';
import { createLogger } from '../logging/logger';
import { createApiServer } from './api-server';
import { VaultOperatorSignatures } from '../adapters/vault/operator-signatures';
import { vaultAuth } from '../adapters/vault/vault-connection';
import { loadApiConfig } from './config';
import { coverageBackend, CoverageOptionsError, httpUserPages } from '../client/cli-coverage';
import { runCoverage } from '../client/coverage';

/**
 * The HTTP API process (`npm run api`): validates configuration, connects to Temporal with the
 * payload codec, serves until SIGINT/SIGTERM (then finishes the requests in flight).
 */
async function main(): Promise<void> {
  const config = loadOrExit('mpc-backup api', () => loadApiConfig());
  const logger = createLogger(config.logLevel, 'mpc-backup-api');
  const connection = await Connection.connect(connectionOptions(config.temporal));
  const temporal = new Client({ connection, namespace: config.temporal.namespace, dataConverter: backupDataConverter(config.codecKeys) });
  const taskQueue = config.temporal.taskQueue;
  // GET /v1/coverage, when this process has the backend's configuration (as the workers read it).
  const backend = process.env.CREDENTIALS_URL ? coverageBackend() : undefined;
  const sourceOrigin = process.env.CREDENTIALS_URL ? new URL(process.env.CREDENTIALS_URL.replace('{userId}', 'u')).origin : undefined;
  const app = await createApiServer({
    ...(backend
      ? {
          coverage: {
            run: (users, options, emit) => runCoverage({ ...backend.deps, temporal }, users, options, emit),
            // Only the backend's own origin gets the credentials header, as with the batches' source.
            pages: (url, pageSize) => {
              if (new URL(url).origin !== sourceOrigin) throw new CoverageOptionsError(`the user source must be on ${sourceOrigin}, the credentials source's origin`);
              return httpUserPages(url, pageSize, backend.credentialsHeader);
            },
          },
        }
      : {}),
    backups: new BackupClient(temporal, taskQueue),
    recoveries: new RecoveryClient(temporal, taskQueue),
    batches: new BatchClient(temporal, taskQueue),
    drills: new DrillClient(temporal, taskQueue),
    keys: new KeysClient(temporal, taskQueue),
    tokens: config.tokens,
    ...(config.signing
      ? { operatorSigning: { signatures: new VaultOperatorSignatures({ ...config.signing.vault, mount: config.signing.mount }, vaultAuth(config.signing.vault)), keyName: config.signing.keyName } }
      : {}),
    bodyLimitBytes: config.bodyLimitBytes,
    logger,
  });
  const address = await app.listen({ host: config.host, port: config.port });
  // Token names (identities), never the tokens.
  logger.info({ address, tokens: config.tokens.length, operators: config.tokens.flatMap((entry) => (entry.name ? [entry.name] : [])), signs: Boolean(config.signing) }, 'api listening; OpenAPI document at /openapi.json');
  const stop = () => {
    logger.info('api stopping');
    void app.close().then(() => connection.close()).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`mpc-backup api failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
