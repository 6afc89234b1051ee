import { DrillClient } from '../client/drill-client';
import { KeysClient } from '../client/keys-client';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import nodeVault from 'node-vault';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createApiServer } from '../api/api-server';
import { connectBackupClient } from '../client/backup-client';
import { BatchClient } from '../client/batch-client';
import { RecoveryClient } from '../client/recovery-client';
import { loadClientConfig } from '../client/config';
import { createCodecServer } from '../codec/codec-server';
import { EncryptionCodec } from '../codec/encryption-codec';
import { toCodecKeyRing } from '../config/codec-config';
import { startPortalSimulator, type PortalSimulator } from '../simulator/portal-simulator';
import { describeDatabaseUrl } from '../db/database-url';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { startProcess, waitUntil, type ManagedProcess } from '../stack/managed-process';
import { startPostgresServer } from '../stack/postgres-server';
import { spawnWorkerProcess, waitForPollers } from '../stack/worker-process';
import { startTemporalCluster, TEMPORAL_SERVICES, type TemporalCluster } from '../stack/temporal-cluster';
import { startTemporalDevServer, type TemporalDevServer } from '../stack/temporal-dev-server';
import { startVaultDevServer, type VaultDevServer } from '../stack/vault-dev-server';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, setUpAwsKmsKey, startLocalKms } from '../stack/local-kms-server';
import { createLogger } from '../logging/logger';
import type { DevOptions, DevPorts } from './options';

const ROOT = join(__dirname, '..');
export const DEV_DIR = join(ROOT, '.stack', 'dev');

/** Stops registered as each part starts; run in reverse, whatever failed. */
export type Stops = (() => Promise<void>)[];

export function log(line: string): void {
  process.stdout.write(`[dev] ${line}\n`);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Fails before anything starts when a port is taken, naming the option that moves it. */
export async function checkPortsFree(ports: DevPorts): Promise<void> {
  for (const [name, port] of Object.entries(ports)) {
    if (!(await portIsFree(port))) {
      throw new Error(`port ${port} (${name}) is in use: stop what holds it, or pass --${name === 'ui' ? 'ui' : name}-port`);
    }
  }
}

/** Temporal (dev server or cluster, with its Web UI decoding through the codec server) and Vault, side by side. */
export async function startTemporalAndVault(opts: DevOptions, ports: DevPorts, stops: Stops): Promise<{ temporal: TemporalDevServer | TemporalCluster; vault: VaultDevServer }> {
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
  if ('services' in temporal) logCluster(temporal);
  return { temporal, vault };
}

function logCluster(temporal: TemporalCluster): void {
  log(`Temporal cluster     temporal-server v${temporal.serverVersion}, ${temporal.historyShards} history shards, on PostgreSQL ${temporal.postgres.version ?? ''} (${temporal.postgres.kind}) ${describeDatabaseUrl(temporal.postgres.url)} + temporal_visibility`);
  for (const name of TEMPORAL_SERVICES) {
    const service = temporal.services[name];
    log(`  ${name.padEnd(18)} gRPC 127.0.0.1:${service.grpcPort}, membership :${service.membershipPort}, metrics http://127.0.0.1:${service.metricsPort}/metrics  (log ${service.logFile})`);
  }
}

/**
 * KMS_PROVIDER for the worker and the webhook: Vault Transit, or local-kms (AWS KMS) with its
 * keys kept under .stack/dev/local-kms and the key alias/mpc-backup (version 1 made once).
 */
export async function startKms(opts: DevOptions, ports: DevPorts, vault: VaultDevServer, stops: Stops): Promise<{ env: NodeJS.ProcessEnv; line: string }> {
  if (opts.kms !== 'aws-kms') {
    return { env: { KMS_PROVIDER: 'vault-transit', VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken }, line: `Vault (Transit)      ${vault.addr}` };
  }
  const localKms = await startLocalKms({ dataDir: join(DEV_DIR, 'local-kms'), logFile: join(DEV_DIR, 'local-kms.log'), port: ports.kms! });
  stops.push(localKms.stop);
  await setUpAwsKmsKey(localKms.endpoint, 'alias/mpc-backup');
  return {
    env: {
      KMS_PROVIDER: 'aws-kms',
      AWS_REGION: LOCAL_KMS_REGION,
      AWS_KMS_ENDPOINT: localKms.endpoint,
      AWS_KMS_KEY_ALIAS: 'alias/mpc-backup',
      AWS_ACCESS_KEY_ID: LOCAL_KMS_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_KMS_CREDENTIALS.secretAccessKey,
    },
    line: `AWS KMS (local-kms)  ${localKms.endpoint}  key alias/mpc-backup (versions alias/mpc-backup/v<N>)`,
  };
}

export interface SelfManagedParts {
  databaseUrl: string;
  webhookUrl: string;
  webhookSecret: string;
}

/**
 * Self-Managed: the company's PostgreSQL and its custodian-share webhook, which the simulator
 * (as Portal) calls during every /v1/backup.
 */
export async function startSelfManaged(ports: DevPorts, kmsEnv: NodeJS.ProcessEnv, databaseUrl: string, stops: Stops): Promise<SelfManagedParts> {
  const webhookSecret = randomBytes(24).toString('hex');
  const webhookUrl = `http://127.0.0.1:${ports.webhook}`;
  const webhook = startProcess('webhook', process.execPath, ['--import', 'tsx', join(ROOT, 'webhook', 'main.ts')], {
    logFile: join(DEV_DIR, 'webhook.log'),
    cwd: ROOT,
    env: {
      ...process.env,
      WEBHOOK_PORT: String(ports.webhook),
      WEBHOOK_SECRETS: webhookSecret,
      DATABASE_URL: databaseUrl,
      ...kmsEnv,
    },
  });
  stops.push(() => webhook.stop());
  await waitUntil('the custodian-share webhook', async () => (await fetch(`${webhookUrl}/health`)).ok, 60_000, webhook.exited);
  log(`custodian webhook    ${webhookUrl}  (POST /backup, POST /backup/fetch)`);
  return { databaseUrl, webhookUrl, webhookSecret };
}

/**
 * The company's PostgreSQL: the audit trail always (the worker records operator acts there and
 * seals the chain with Vault), and in Self-Managed mode the ciphertexts and custodian shares.
 */
export async function startCompanyDatabase(stops: Stops): Promise<string> {
  const postgres = await startPostgresServer({ logFile: join(DEV_DIR, 'postgres.log'), dataDir: join(DEV_DIR, 'postgres') });
  stops.push(postgres.stop);
  // The dev Vault keeps its keys in memory: a previous run's seals were signed by a key that is gone,
  // so that run's trail is cleared rather than reported as forged.
  const pool = createDatabasePool(postgres.url);
  try {
    await migrate(pool);
    await pool.query('TRUNCATE audit_events, audit_seals');
  } finally {
    await pool.end();
  }
  log(`PostgreSQL           ${describeDatabaseUrl(postgres.url)} (${postgres.kind})  audit trail: audit_events, audit_seals`);
  return postgres.url;
}

/**
 * An auditor's environment for `backup audit verify|list` (audit.env, owner-only): the database and
 * a Vault token whose only policy is mpc-audit-verifier (verify with the audit-chain key; no sign,
 * no decrypt), as docs/operations.md says an auditor gets.
 */
export async function writeAuditorEnv(vault: VaultDevServer, databaseUrl: string): Promise<string> {
  const root = nodeVault({ endpoint: vault.addr, token: vault.rootToken, debug: () => undefined } as nodeVault.VaultOptions);
  const created = (await root.tokenCreate({ policies: ['mpc-audit-verifier'], no_default_policy: true, display_name: 'dev-auditor', ttl: '768h' })) as { auth: { client_token: string } };
  const file = join(DEV_DIR, 'audit.env');
  const env = { DATABASE_URL: databaseUrl, VAULT_ADDR: vault.addr, VAULT_TOKEN: created.auth.client_token };
  writeFileSync(file, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
  return file;
}

/** The Portal simulator, in this process, with `users` seeded as user-1, user-2, … */
export async function startSimulator(ports: DevPorts, selfManaged: SelfManagedParts | undefined, users: number, stops: Stops): Promise<{ simulator: PortalSimulator; userIds: string[] }> {
  const simulator = await startPortalSimulator({
    port: ports.simulator,
    ...(selfManaged ? { selfManaged: { webhookUrl: selfManaged.webhookUrl, webhookSecret: selfManaged.webhookSecret } } : {}),
  });
  stops.push(simulator.close);
  const userIds = Array.from({ length: users }, (_, i) => `user-${i + 1}`);
  for (const id of userIds) simulator.state.seedUser(id);
  return { simulator, userIds };
}

/**
 * The codec server holds the client's codec key only: the UI shows inputs, results and failures
 * decoded, and backup shares still sealed.
 */
export async function startCodecServer(ports: DevPorts, codecKeys: string, stops: Stops): Promise<void> {
  const codecServer = createCodecServer({
    codec: new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })),
    allowedOrigins: [`http://127.0.0.1:${ports.ui}`, `http://localhost:${ports.ui}`],
    tokens: [],
    // The dev UI sends retry and abandon through it; on loopback only, like the whole dev stack.
    encode: true,
  });
  await codecServer.listen({ host: '127.0.0.1', port: ports.codec });
  stops.push(() => codecServer.close());
}

/** The worker, a process of its own on the simulator, the KMS and (self-managed) PostgreSQL. */
export function startWorker(
  parts: { clientEnv: Record<string, string>; simulator: PortalSimulator; kmsEnv: NodeJS.ProcessEnv; ports: DevPorts; selfManaged: SelfManagedParts | undefined; databaseUrl: string },
  stops: Stops,
): ManagedProcess {
  const { simulator, ports, selfManaged } = parts;
  const worker = spawnWorkerProcess('worker', {
    logFile: join(DEV_DIR, 'worker.log'),
    env: {
      // One build and no second beside it: unversioned unless the shell says on (docs/changing-workflows.md).
      TEMPORAL_WORKER_VERSIONING: 'off',
      ...process.env,
      ...parts.clientEnv,
      // Only the worker gets this key: the CLI (client.env) sees sealed shares as opaque boxes.
      SHARE_SEALING_KEYS: `dev-seal-1:${randomBytes(32).toString('base64')}`,
      PORTAL_ENCLAVE_URL: simulator.url,
      PORTAL_API_URL: simulator.url,
      ...parts.kmsEnv,
      CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
      SIGNING_SHARES_URL: `${simulator.url}/backend/users/{userId}/signing-shares`,
      METRICS_ADDRESS: `127.0.0.1:${ports.metrics}`,
      TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${ports.temporalMetrics}`,
      // The audit trail, whatever the mode.
      DATABASE_URL: parts.databaseUrl,
      ...(selfManaged ? { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres' } : {}),
    },
  });
  stops.push(() => worker.stop());
  return worker;
}

/** The backup client the demo and the API use, once the worker polls. */
export async function connectClient(clientEnv: Record<string, string>, worker: ManagedProcess, stops: Stops) {
  const backups = await connectBackupClient(loadClientConfig(clientEnv));
  stops.push(() => backups.close());
  await waitForPollers(backups.temporal.connection, backups.taskQueue, worker.exited);
  return backups;
}

/** The HTTP API, with a token of its own kept in a file only its owner reads (never printed); returns that file. */
export async function startApi(backups: Awaited<ReturnType<typeof connectClient>>, ports: DevPorts, stops: Stops): Promise<string> {
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
  return apiTokenFile;
}
