import { DrillClient } from '../client/drill-client';
import { KeysClient } from '../client/keys-client';
import { randomBytes } from 'node:crypto';
import nodeVault from 'node-vault';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
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
import { devStackDir, devStackFile } from '../config/dev-stack-files';
import { operatorKeyNames, seedSigningKeys } from '../stack/operator-keys';
import { approvingRecoveriesWith, transitSigner, type DevOperator } from '../stack/approving-recoveries';
import { VaultOperatorSignatures } from '../adapters/vault/operator-signatures';
import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import type { DevOptions, DevPorts } from './options';

const ROOT = join(__dirname, '..');
export const DEV_DIR = devStackDir();

/** Stops registered as each part starts; run in reverse, whatever failed. */
export type Stops = (() => Promise<void>)[];

/** A file as the operator types it: relative to here when under it (`.stack/dev/api-token`), else absolute. */
export function shown(file: string): string {
  const fromHere = relative(process.cwd(), file);
  return fromHere && !fromHere.startsWith('..') ? fromHere : file;
}

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
 * The company's PostgreSQL, in both modes: Self-Managed keeps the custodian shares there, and eject
 * records every release there. Its URL with the password goes to a file only its owner reads; the
 * stack prints it without.
 */
export async function startCompanyDatabase(stops: Stops): Promise<string> {
  const logFile = join(DEV_DIR, 'postgres.log');
  const postgres = await startPostgresServer({ logFile, dataDir: join(DEV_DIR, 'postgres') }).catch((error: unknown) => {
    // Run as root from a checkout under /root, the server's own user cannot reach .stack/dev: a
    // database for this run only, in the temporary directory, rather than no dev stack.
    if (!(error instanceof Error && error.message.includes('is not reachable by the'))) throw error;
    log(`PostgreSQL's user cannot reach ${shown(DEV_DIR)}: the company database lives in a temporary directory for this run`);
    return startPostgresServer({ logFile });
  });
  stops.push(postgres.stop);
  // The dev Vault keeps its keys in memory: a previous run's seals were signed by a key that is gone,
  // so that run's audit trail is cleared rather than reported as forged.
  const pool = createDatabasePool(postgres.url);
  try {
    await migrate(pool);
    await pool.query('TRUNCATE audit_events, audit_seals');
  } finally {
    await pool.end();
  }
  const urlFile = devStackFile('databaseUrl');
  writeFileSync(urlFile, `${postgres.url}\n`, { mode: 0o600 });
  log(`PostgreSQL           ${describeDatabaseUrl(postgres.url)} (${postgres.kind}; the URL with its password: ${shown(urlFile)}; audit trail: audit_events, audit_seals)`);
  return postgres.url;
}

/**
 * Self-Managed: the custodian-share webhook on the company's PostgreSQL, which the simulator (as
 * Portal) calls during every /v1/backup.
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
 * An auditor's environment for `backup audit verify|list` (audit.env, owner-only): the database and
 * a Vault token whose only policy is mpc-audit-verifier (verify with the audit-chain key; no sign,
 * no decrypt), as docs/operations.md says an auditor gets.
 */
export async function writeAuditorEnv(vault: VaultDevServer, databaseUrl: string): Promise<string> {
  const root = nodeVault({ endpoint: vault.addr, token: vault.rootToken, debug: () => undefined } as nodeVault.VaultOptions);
  const created = (await root.tokenCreate({ policies: ['mpc-audit-verifier'], no_default_policy: true, display_name: 'dev-auditor', ttl: '768h' })) as { auth: { client_token: string } };
  const file = devStackFile('auditEnv');
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

/** The dev stack's operators: ops-carol requests recoveries, ops-alice and ops-bob approve them (RECOVERY_APPROVALS 2). */
export const DEV_OPERATORS: DevOperator[] = ['ops-alice', 'ops-bob', 'ops-carol'];
export const DEV_APPROVERS = 'ops-alice,ops-bob';

/** The operators' Transit keys and tokens (each may sign only with its own key), and the HTTP API's; each token in a file only its owner reads. */
export async function seedDevOperators(vault: VaultDevServer): Promise<{ vault: VaultDevServer; tokens: Record<string, string> }> {
  const tokens = await seedSigningKeys(vault.addr, vault.rootToken, { ...operatorKeyNames(DEV_OPERATORS), api: 'mpc-backup-api' });
  for (const [name, token] of Object.entries(tokens)) writeFileSync(join(DEV_DIR, `${name}.vault-token`), `${token}\n`, { mode: 0o600 });
  return { vault, tokens };
}

export type DevOperators = Awaited<ReturnType<typeof seedDevOperators>>;

/** Recoveries as the dev operators: started by ops-carol, approved by ops-alice and ops-bob. */
export function devRecoveries(operators: DevOperators, backups: Awaited<ReturnType<typeof connectClient>>) {
  const signerOf = (operator: DevOperator) => transitSigner(operator, { addr: operators.vault.addr, token: operators.tokens[operator]! });
  return approvingRecoveriesWith(signerOf, { temporal: backups.temporal, taskQueue: backups.taskQueue });
}

/** The worker, a process of its own on the simulator, the KMS and (self-managed) PostgreSQL. */
export function startWorker(
  parts: { clientEnv: Record<string, string>; simulator: PortalSimulator; kmsEnv: NodeJS.ProcessEnv; ports: DevPorts; selfManaged: SelfManagedParts | undefined; vault: VaultDevServer; databaseUrl: string },
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
      // Recoveries wait for two of these operators; their signatures are verified on the dev Vault.
      RECOVERY_APPROVERS: DEV_APPROVERS,
      OPERATOR_VAULT_ADDR: parts.vault.addr,
      VAULT_TOKEN: parts.kmsEnv.VAULT_TOKEN ?? parts.vault.rootToken,
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

/**
 * The HTTP API, with a token of its own kept in a file only its owner reads (never printed); returns
 * that file. The token is named ops-carol (API_TOKENS=ops-carol:…): the API signs that operator's
 * recovery requests with its own key.
 */
export async function startApi(backups: Awaited<ReturnType<typeof connectClient>>, ports: DevPorts, stops: Stops, operators: DevOperators): Promise<string> {
  const apiTokenFile = devStackFile('apiToken');
  const apiToken = randomBytes(32).toString('base64url');
  writeFileSync(apiTokenFile, `${apiToken}\n`, { mode: 0o600 });
  const api = await createApiServer({
    backups,
    recoveries: new RecoveryClient(backups.temporal, backups.taskQueue),
    operatorSigning: {
      signatures: new VaultOperatorSignatures({ endpoint: operators.vault.addr, mount: 'transit', timeoutMs: 5_000 }, new StaticTokenAuth(operators.tokens.api!)),
      keyName: 'mpc-backup-api',
    },
    batches: new BatchClient(backups.temporal, backups.taskQueue),
    drills: new DrillClient(backups.temporal, backups.taskQueue),
    keys: new KeysClient(backups.temporal, backups.taskQueue),
    tokens: [{ name: 'ops-carol', token: apiToken }],
    bodyLimitBytes: 256 * 1024,
    logger: createLogger('warn', 'mpc-backup-api'),
  });
  await api.listen({ host: '127.0.0.1', port: ports.api });
  stops.push(() => api.close());
  return apiTokenFile;
}
