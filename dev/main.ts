import { KeysClient } from '../client/keys-client';
import { DrillClient } from '../client/drill-client';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Command } from 'commander';
import { createApiServer } from '../api/api-server';
import { connectBackupClient } from '../client/backup-client';
import { BatchClient } from '../client/batch-client';
import { RecoveryClient } from '../client/recovery-client';
import { loadClientConfig } from '../client/config';
import { createCodecServer } from '../codec/codec-server';
import { EncryptionCodec } from '../codec/encryption-codec';
import { toCodecKeyRing } from '../config/codec-config';
import { startPortalSimulator } from '../simulator/portal-simulator';
import { describeDatabaseUrl } from '../db/database-url';
import { startProcess, waitUntil } from '../stack/managed-process';
import { startPostgresServer } from '../stack/postgres-server';
import { spawnWorkerProcess, waitForPollers } from '../stack/worker-process';
import { startTemporalCluster, TEMPORAL_SERVICES } from '../stack/temporal-cluster';
import { startTemporalDevServer } from '../stack/temporal-dev-server';
import { startVaultDevServer } from '../stack/vault-dev-server';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, setUpAwsKmsKey, startLocalKms } from '../stack/local-kms-server';
import { createLogger } from '../logging/logger';

/**
 * The local default stack in one command: Temporal (with its Web UI), Vault with Transit, the
 * Portal simulator with seeded users, and a worker; then one demo backup. Ctrl-C stops it all.
 */
const program = new Command('dev')
  .option('--users <count>', 'users to seed in the Portal simulator', '5')
  .option('--once', 'run the demo backup, print its result and stop everything')
  .option('--temporal-port <port>', 'Temporal gRPC port', '7233')
  .option('--ui-port <port>', 'Temporal Web UI port', '8233')
  .option('--vault-port <port>', 'Vault port', '8200')
  .option('--kms <provider>', 'the KMS the worker and webhook use: vault-transit, or aws-kms (local-kms, a local AWS KMS)', 'vault-transit')
  .option('--kms-port <port>', 'local-kms port (with --kms aws-kms)', '8210')
  .option('--simulator-port <port>', 'Portal simulator port', '4100')
  .option('--codec-port <port>', 'codec server port (the Web UI decodes payloads through it)', '8234')
  .option('--cluster', 'Temporal as a cluster: temporal-server frontend, history, matching and worker processes on PostgreSQL (instead of the dev server)')
  .option('--self-managed', 'Self-Managed Backups: PostgreSQL, the custodian-share webhook, and the simulator delivering to it')
  .option('--webhook-port <port>', 'custodian-share webhook port (with --self-managed)', '4300')
  .option('--api-port <port>', 'HTTP API port', '8080')
  .option('--metrics-port <port>', "the worker's Prometheus endpoint for the service's metrics", '9465')
  .option('--temporal-metrics-port <port>', "the worker's Prometheus endpoint for the Temporal runtime's metrics", '9464')
  .parse();

const ROOT = join(__dirname, '..');const DEV_DIR = join(ROOT, '.stack', 'dev');

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function main(): Promise<void> {
  const opts = program.opts<{
    users: string;
    once?: boolean;
    cluster?: boolean;
    temporalPort: string;
    uiPort: string;
    codecPort: string;
    vaultPort: string;
    kms: string;
    kmsPort: string;
    simulatorPort: string;
    selfManaged?: boolean;
    webhookPort: string;
    apiPort: string;
    metricsPort: string;
    temporalMetricsPort: string;
  }>();
  const ports = {
    temporal: Number(opts.temporalPort),
    ui: Number(opts.uiPort),
    codec: Number(opts.codecPort),
    vault: Number(opts.vaultPort),
    simulator: Number(opts.simulatorPort),
    api: Number(opts.apiPort),
    metrics: Number(opts.metricsPort),
    temporalMetrics: Number(opts.temporalMetricsPort),
    ...(opts.selfManaged ? { webhook: Number(opts.webhookPort) } : {}),
    ...(opts.kms === 'aws-kms' ? { kms: Number(opts.kmsPort) } : {}),
  };
  if (opts.kms !== 'vault-transit' && opts.kms !== 'aws-kms') throw new Error(`--kms must be vault-transit or aws-kms, not ${opts.kms}`);
  for (const [name, port] of Object.entries(ports)) {
    if (!(await portIsFree(port))) {
      throw new Error(`port ${port} (${name}) is in use: stop what holds it, or pass --${name === 'ui' ? 'ui' : name}-port`);
    }
  }
  mkdirSync(DEV_DIR, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(0)));

  try {
    log(`obtaining and starting Temporal${opts.cluster ? ' (cluster)' : ''} and Vault (the first run builds them from Go modules)…`);
    const uiCodecEndpoint = `http://127.0.0.1:${ports.codec}`;
    const [temporal, vault] = await Promise.all([
      opts.cluster
        ? startTemporalCluster({
            runDir: join(DEV_DIR, 'temporal-cluster'),
            port: ports.temporal,
            uiPort: ports.ui,
            uiCodecEndpoint,
            // Temporal's own PostgreSQL, kept across runs like the company database.
            postgresDataDir: join(DEV_DIR, 'temporal-postgres'),
          })
        : startTemporalDevServer({ logFile: join(DEV_DIR, 'temporal.log'), port: ports.temporal, uiPort: ports.ui, uiCodecEndpoint }),
      startVaultDevServer({ logFile: join(DEV_DIR, 'vault.log'), port: ports.vault }),
    ]);
    stops.push(temporal.stop, vault.stop);
    if ('services' in temporal) {
      log(`Temporal cluster     temporal-server v${temporal.serverVersion}, ${temporal.historyShards} history shards, on PostgreSQL ${temporal.postgres.version ?? ''} (${temporal.postgres.kind}) ${describeDatabaseUrl(temporal.postgres.url)} + temporal_visibility`);
      for (const name of TEMPORAL_SERVICES) {
        const service = temporal.services[name];
        log(`  ${name.padEnd(18)} gRPC 127.0.0.1:${service.grpcPort}, membership :${service.membershipPort}, metrics http://127.0.0.1:${service.metricsPort}/metrics  (log ${service.logFile})`);
      }
    }
    // KMS_PROVIDER for the worker and the webhook: Vault Transit, or local-kms (AWS KMS) with its
    // keys kept under .stack/dev/local-kms and the key alias/mpc-backup (version 1 made once).
    let kmsEnv: NodeJS.ProcessEnv = { KMS_PROVIDER: 'vault-transit', VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken };
    let kmsLine = `Vault (Transit)      ${vault.addr}`;
    if (opts.kms === 'aws-kms') {
      const localKms = await startLocalKms({ dataDir: join(DEV_DIR, 'local-kms'), logFile: join(DEV_DIR, 'local-kms.log'), port: ports.kms! });
      stops.push(localKms.stop);
      await setUpAwsKmsKey(localKms.endpoint, 'alias/mpc-backup');
      kmsEnv = {
        KMS_PROVIDER: 'aws-kms',
        AWS_REGION: LOCAL_KMS_REGION,
        AWS_KMS_ENDPOINT: localKms.endpoint,
        AWS_KMS_KEY_ALIAS: 'alias/mpc-backup',
        AWS_ACCESS_KEY_ID: LOCAL_KMS_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_KMS_CREDENTIALS.secretAccessKey,
      };
      kmsLine = `AWS KMS (local-kms)  ${localKms.endpoint}  key alias/mpc-backup (versions alias/mpc-backup/v<N>)`;
    }
    // Self-Managed: the company's PostgreSQL and its custodian-share webhook, which the simulator
    // (as Portal) calls during every /v1/backup.
    let selfManaged: { databaseUrl: string; webhookUrl: string; webhookSecret: string } | undefined;
    if (opts.selfManaged) {
      const postgres = await startPostgresServer({ logFile: join(DEV_DIR, 'postgres.log'), dataDir: join(DEV_DIR, 'postgres') });
      stops.push(postgres.stop);
      const webhookSecret = randomBytes(24).toString('hex');
      const webhookUrl = `http://127.0.0.1:${ports.webhook}`;
      const webhook = startProcess('webhook', process.execPath, ['--import', 'tsx', join(ROOT, 'webhook', 'main.ts')], {
        logFile: join(DEV_DIR, 'webhook.log'),
        cwd: ROOT,
        env: {
          ...process.env,
          WEBHOOK_PORT: String(ports.webhook),
          WEBHOOK_SECRETS: webhookSecret,
          DATABASE_URL: postgres.url,
          ...kmsEnv,
        },
      });
      stops.push(() => webhook.stop());
      await waitUntil('the custodian-share webhook', async () => (await fetch(`${webhookUrl}/health`)).ok, 60_000, webhook.exited);
      selfManaged = { databaseUrl: postgres.url, webhookUrl, webhookSecret };
      log(`PostgreSQL           ${describeDatabaseUrl(postgres.url)} (${postgres.kind})`);
      log(`custodian webhook    ${webhookUrl}  (POST /backup, POST /backup/fetch)`);
    }
    const simulator = await startPortalSimulator({
      port: ports.simulator,
      ...(selfManaged ? { selfManaged: { webhookUrl: selfManaged.webhookUrl, webhookSecret: selfManaged.webhookSecret } } : {}),
    });
    stops.push(simulator.close);
    const userIds = Array.from({ length: Number(opts.users) }, (_, i) => `user-${i + 1}`);
    for (const id of userIds) simulator.state.seedUser(id);

    // The dev stack's own codec key; the CLI reads it from this file (never printed).
    const clientEnv = {
      TEMPORAL_ADDRESS: temporal.address,
      PAYLOAD_CODEC_KEYS: `dev-1:${randomBytes(32).toString('base64')}`,
    };
    // The codec server holds the client's codec key only: the UI shows inputs, results and failures
    // decoded, and backup shares still sealed.
    const codecServer = createCodecServer({
      codec: new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: clientEnv.PAYLOAD_CODEC_KEYS })),
      allowedOrigins: [`http://127.0.0.1:${ports.ui}`, `http://localhost:${ports.ui}`],
      tokens: [],
      // The dev UI sends retry and abandon through it; on loopback only, like the whole dev stack.
      encode: true,
    });
    await codecServer.listen({ host: '127.0.0.1', port: ports.codec });
    stops.push(() => codecServer.close());
    const clientEnvFile = join(DEV_DIR, 'client.env');
    writeFileSync(clientEnvFile, Object.entries(clientEnv).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
    const worker = spawnWorkerProcess('worker', {
      logFile: join(DEV_DIR, 'worker.log'),
      env: {
        // One build and no second beside it: unversioned unless the shell says on (docs/changing-workflows.md).
        TEMPORAL_WORKER_VERSIONING: 'off',
        ...process.env,
        ...clientEnv,
        // Only the worker gets this key: the CLI (client.env) sees sealed shares as opaque boxes.
        SHARE_SEALING_KEYS: `dev-seal-1:${randomBytes(32).toString('base64')}`,
        PORTAL_ENCLAVE_URL: simulator.url,
        PORTAL_API_URL: simulator.url,
        ...kmsEnv,
        CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
        SIGNING_SHARES_URL: `${simulator.url}/backend/users/{userId}/signing-shares`,
        METRICS_ADDRESS: `127.0.0.1:${ports.metrics}`,
        TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${ports.temporalMetrics}`,
        ...(selfManaged ? { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: selfManaged.databaseUrl } : {}),
      },
    });
    stops.push(() => worker.stop());

    const backups = await connectBackupClient(loadClientConfig(clientEnv));
    stops.push(() => backups.close());
    await waitForPollers(backups.temporal.connection, backups.taskQueue, worker.exited);

    // The HTTP API, with a token of its own kept in a file only its owner reads (never printed).
    const apiTokenFile = join(DEV_DIR, 'api-token');
    const apiToken = randomBytes(32).toString('base64url');
    writeFileSync(apiTokenFile, `${apiToken}\n`, { mode: 0o600 });
    const api = await createApiServer({
      backups,
      recoveries: new RecoveryClient(backups.temporal, backups.taskQueue),
      batches: new BatchClient(backups.temporal, backups.taskQueue),
      drills: new DrillClient(backups.temporal, backups.taskQueue),
      keys: new KeysClient(backups.temporal, backups.taskQueue),
      tokens: [apiToken],
      bodyLimitBytes: 256 * 1024,
      logger: createLogger('warn', 'mpc-backup-api'),
    });
    await api.listen({ host: '127.0.0.1', port: ports.api });
    stops.push(() => api.close());

    log(`Temporal Web UI      ${temporal.uiUrl}`);
    log(`Temporal gRPC        ${temporal.address}`);
    log(`codec server         http://127.0.0.1:${ports.codec}  (the UI decodes through it; shares stay sealed)`);
    log(kmsLine);
    log(`HTTP API             http://127.0.0.1:${ports.api}  (OpenAPI: /openapi.json; bearer token in ${apiTokenFile})`);
    log(`metrics              http://127.0.0.1:${ports.metrics}/metrics (service), http://127.0.0.1:${ports.temporalMetrics}/metrics (Temporal runtime)`);
    log(`Portal simulator     ${simulator.url}  users: ${userIds.join(', ')}${selfManaged ? '  (Self-Managed: delivers custodian shares to the webhook)' : ''}`);
    log(`logs                 ${DEV_DIR}`);
    log('demo: backing up user-1 …');
    const started = await backups.startBackupWorkflow('user-1');
    const result = await backups.waitForBackup('user-1', started.runId);
    log(`demo backup ${result.status}: pairs ${result.pairIds.SECP256K1}, ${result.pairIds.ED25519}`);
    log(`  see it in the UI: ${temporal.uiUrl}/namespaces/default/workflows/${started.workflowId}`);
    if (selfManaged) {
      const delivered = simulator.webhookDeliveries.filter((d) => d.call === 'backup' && d.outcome === 'ok').length;
      log(`  custodian shares delivered to the webhook and acknowledged: ${delivered} (see ${join(DEV_DIR, 'webhook.log')})`);
    }

    if (opts.once) {
      await stopAll();
      return;
    }
    log('try, in another terminal:');
    log('  npm run backup:dev -- start user-2 --wait');
    log('  npm run backup:dev -- recover start user-1 --wait        # recovery from user-1\'s backup, then a fresh backup');
    log('  npm run backup:dev -- drill run --users user-1,user-2 --wait   # a restore drill');
    log(`  curl -s -XPOST -H "authorization: Bearer $(cat ${apiTokenFile})" http://127.0.0.1:${ports.api}/v1/backups/user-4`);
    log('  npm run backup:dev -- status user-2');
    log(`  curl -s -XPOST ${simulator.url}/admin/faults -H 'content-type: application/json' \\`);
    log(`    -d '{"route":"markPairs","kind":"status","status":401,"userId":"user-3"}'`);
    log('  npm run backup:dev -- start user-3   # parks as NEEDS_ATTENTION; clear the fault, then:');
    log(`  curl -s -XDELETE ${simulator.url}/admin/faults && npm run backup:dev -- retry user-3`);
    log('Ctrl-C stops everything.');
    await new Promise(() => undefined);
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function log(line: string): void {
  process.stdout.write(`[dev] ${line}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`dev stack failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
