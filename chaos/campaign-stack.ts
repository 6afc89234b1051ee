import { randomBytes } from 'node:crypto';
import type { OperatorSigner } from '../client/operator-signer';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { parseDatabaseUrl } from '../db/database-url';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { BackupClient } from '../client/backup-client';
import { KeysClient } from '../client/keys-client';
import type { RecoveryClient } from '../client/recovery-client';
import { keyRotationPolicy, operatorVerifyPolicy, workerPolicy } from '../stack/vault-policies';
import { operatorKeyNames, seedSigningKeys } from '../stack/operator-keys';
import { approvingRecoveriesWith, transitSigner } from '../stack/approving-recoveries';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { startPortalSimulator, type PortalSimulator } from '../simulator/portal-simulator';
import { freePort, freePortBelow32768 } from '../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../stack/managed-process';
import { startPostgresServer, type PostgresServer } from '../stack/postgres-server';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import { TcpFaultProxy } from '../stack/tcp-fault-proxy';
import { startTemporalCluster, type TemporalCluster, type TemporalServiceName } from '../stack/temporal-cluster';
import { startTemporalDevServer, type TemporalDevServer } from '../stack/temporal-dev-server';
import { setUpAppRole, setUpTransit, startVaultServer, type VaultServer } from '../stack/vault-server';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, setUpAwsKmsKey, startLocalKms, type LocalKmsServer } from '../stack/local-kms-server';
import type { CampaignContext } from './campaign-context';
import { campaignStores, runsCompanyPostgres } from './campaign-options';
import { ProcessSupervisor } from './process-supervisor';
import { sleep } from './resilient';

const ROOT = join(__dirname, '..');
/** The task queue of the campaign's workers, apart from a dev stack's. */
const TASK_QUEUE = 'mpc-backup-chaos';

/** The KMS the workers and the webhook use, behind a fault proxy the KMS faults act on. */
export interface CampaignKms {
  /** local-kms, when the run uses AWS KMS (else Vault Transit). */
  aws: LocalKmsServer | undefined;
  proxy: TcpFaultProxy;
  /** As the campaign's log names it. */
  name: string;
  /** How the workers and the webhook reach it (through the proxy). */
  env: NodeJS.ProcessEnv;
}

export interface CampaignClients {
  /** With the payload codec: reads results and queries. */
  client: Client;
  /** Without the codec: histories as stored, for the secret scan. */
  rawClient: Client;
  backups: BackupClient;
  recoveries: RecoveryClient;
  keys: KeysClient;
  /** ops-alice (an approver): signs the operator's retries and the rotation's start. */
  operator: OperatorSigner;
}

/** Every server and process of one campaign run, started and watched. */
export interface CampaignStack {
  temporal: TemporalDevServer | TemporalCluster;
  cluster: TemporalCluster | undefined;
  vault: VaultServer;
  appRole: { roleId: string; secretId: string };
  kms: CampaignKms;
  postgres: PostgresServer | undefined;
  webhook: CampaignWebhook | undefined;
  simulator: PortalSimulator;
  workers: WorkerPool;
  /** What every worker is told (the servers through the KMS proxy): the coverage report reads with the same settings. */
  workerEnv: NodeJS.ProcessEnv;
  supervisor: ProcessSupervisor;
  /** Cluster mode: starts a Temporal service (again), watched like the workers. */
  startClusterService(name: TemporalServiceName): Promise<void>;
  clients: CampaignClients;
}

/**
 * The servers start side by side (and the workflow bundle is built meanwhile); then the KMS, the
 * self-managed webhook, the simulator, the workers and the clients. Everything started is stopped
 * through `ctx.cleanups`, even when a later start fails.
 */
export async function startCampaignStack(ctx: CampaignContext): Promise<CampaignStack> {
  const { options, say } = ctx;
  const { temporal, cluster, vault, postgres, bundleBuilt } = await startServers(ctx);
  const { appRole, kms } = await setUpKms(ctx, vault);
  const supervisor = new ProcessSupervisor(ctx);
  const startClusterService = async (name: TemporalServiceName): Promise<void> => {
    await cluster!.start(name);
    supervisor.watch(cluster!.services[name].process, `temporal-${name}`, () => startClusterService(name));
  };
  if (cluster) for (const service of Object.values(cluster.services)) supervisor.watch(service.process, `temporal-${service.name}`, () => startClusterService(service.name));

  const webhook = postgres && options.mode === 'self-managed' ? await CampaignWebhook.prepare(ctx, supervisor, postgres, kms.env) : undefined;
  // Ready before the first backup starts; it loads while the simulator and workers start.
  const webhookReady = webhook ? webhook.start().then(() => say(`webhook on ${webhook.url}`)) : Promise.resolve();
  webhookReady.catch(() => undefined);

  const simulator = await startPortalSimulator({
    seed: options.seed,
    ...(webhook ? { selfManaged: { webhookUrl: webhook.url, webhookSecret: webhook.secret }, retainCustodianShares: true } : {}),
  });
  ctx.cleanups.push(() => simulator.close());

  const codecKeys = `chaos-1:${randomBytes(32).toString('base64')}`;
  const workersEnv = workerEnv(ctx, { temporal, simulator, kms, postgres, codecKeys, bundlePath: await bundleBuilt });
  const workers = new WorkerPool(ctx, supervisor, workersEnv);
  for (let i = 0; i < options.workers; i++) workers.spawn(i);
  ctx.cleanups.push(() => workers.killAll());

  const clients = await connectClients(ctx, temporal.address, codecKeys, vault);
  await webhookReady;
  return { temporal, cluster, vault, appRole, kms, postgres, webhook, simulator, workers, workerEnv: workersEnv, supervisor, startClusterService, clients };
}

/** Registers a server's stop with the run's cleanups, and hands the server back. */
function owned<T extends { stop(): Promise<unknown> }>(ctx: CampaignContext, server: T): T {
  ctx.cleanups.push(() => server.stop());
  return server;
}

/** Temporal (dev server or cluster), Vault and (self-managed) PostgreSQL, started side by side. */
async function startServers(ctx: CampaignContext) {
  const { options, say } = ctx;
  const { runDir } = options;
  say(`seed ${options.seed}: ${options.backups} backups (${options.mode}), ${options.workers} workers, run dir ${runDir}`);
  const bundleBuilt = writeWorkflowBundle(join(runDir, 'workflow-bundle.js'));
  bundleBuilt.catch(() => undefined);
  const starts = await Promise.allSettled([
    options.cluster
      ? // Logs beside the others (the secret scan reads every .log of the run dir).
        startTemporalCluster({ runDir, allowExternalDatabase: false, logLevel: 'warn' }).then((server) => owned(ctx, server))
      : startTemporalDevServer({ logFile: join(runDir, 'temporal.log'), dbFile: join(runDir, 'temporal.db') }).then((server) => owned(ctx, server)),
    startVaultServer({ dataDir: join(runDir, 'vault'), logFile: join(runDir, 'vault.log') }).then((server) => owned(ctx, server)),
    runsCompanyPostgres(options)
      ? startPostgresServer({ allowExternal: false, logFile: join(runDir, 'postgres.log') }).then((server) => owned(ctx, server))
      : undefined,
  ] as const);
  const failedStart = starts.find((start) => start.status === 'rejected');
  if (failedStart) throw failedStart.reason;
  const [temporal, vault, postgres] = starts.map((start) => (start as PromiseFulfilledResult<unknown>).value) as [
    TemporalDevServer | TemporalCluster,
    VaultServer,
    PostgresServer | undefined,
  ];
  const cluster = 'services' in temporal ? temporal : undefined;
  if (cluster) {
    const services = Object.values(cluster.services).map((service) => `${service.name} :${service.grpcPort}`).join(', ');
    say(`Temporal cluster v${cluster.serverVersion} (${cluster.historyShards} shards): ${services}; its PostgreSQL on port ${parseDatabaseUrl(cluster.postgres.url).port}`);
  }
  return { temporal, cluster, vault, postgres, bundleBuilt };
}

/**
 * Vault's Transit key and AppRole, and the KMS in use behind its own fault proxy: Vault (AppRole,
 * through the Vault proxy), or local-kms (AWS KMS) with the key alias/mpc-backup.
 */
async function setUpKms(ctx: CampaignContext, vault: VaultServer): Promise<{ appRole: CampaignStack['appRole']; kms: CampaignKms }> {
  const { options, say } = ctx;
  const { runDir } = options;
  await setUpTransit(vault.addr, vault.rootToken);
  // With a rotation in the run, the workers' role also holds the rotation policy (in production a
  // rotation runs on a worker pool of its own: docs/restore.md).
  // The workers also verify operators' signatures (recovery approvals).
  const appRole = await setUpAppRole(vault.addr, vault.rootToken, {
    tokenTtl: options.vaultTokenTtl,
    tokenMaxTtl: '10m',
    policy: [options.rotateMidRun ? keyRotationPolicy('mpc-backup') : workerPolicy('mpc-backup'), operatorVerifyPolicy()].join('\n'),
  });
  const vaultProxy = await startProxy(ctx, vault.port);
  if (options.kms !== 'aws-kms') {
    // Approvals verify on Vault directly: the campaign's KMS faults are about the backups, not the operators.
    const env = { VAULT_ADDR: `http://127.0.0.1:${vaultProxy.port}`, OPERATOR_VAULT_ADDR: vault.addr, VAULT_ROLE_ID: appRole.roleId, VAULT_SECRET_ID: appRole.secretId, VAULT_TIMEOUT_MS: '2000' };
    return { appRole, kms: { aws: undefined, proxy: vaultProxy, name: 'Vault', env } };
  }
  const aws = owned(ctx, await startLocalKms({ dataDir: join(runDir, 'local-kms'), logFile: join(runDir, 'local-kms.log') }));
  await setUpAwsKmsKey(aws.endpoint, 'alias/mpc-backup');
  const proxy = await startProxy(ctx, aws.port);
  const env = {
    KMS_PROVIDER: 'aws-kms',
    AWS_REGION: LOCAL_KMS_REGION,
    AWS_KMS_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
    AWS_KMS_KEY_ALIAS: 'alias/mpc-backup',
    AWS_KMS_TIMEOUT_MS: '2000',
    AWS_ACCESS_KEY_ID: LOCAL_KMS_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_KMS_CREDENTIALS.secretAccessKey,
    // Recovery approvals: operators' signatures are verified on Vault.
    OPERATOR_VAULT_ADDR: vault.addr,
    VAULT_ROLE_ID: appRole.roleId,
    VAULT_SECRET_ID: appRole.secretId,
  };
  say(`KMS: AWS KMS on local-kms ${aws.endpoint} (key alias/mpc-backup)`);
  return { appRole, kms: { aws, proxy, name: 'local-kms', env } };
}

async function startProxy(ctx: CampaignContext, port: number): Promise<TcpFaultProxy> {
  const proxy = new TcpFaultProxy({ host: '127.0.0.1', port }, await freePort());
  await proxy.start();
  ctx.cleanups.push(() => proxy.stop());
  return proxy;
}

/** Self-managed: the company's custodian-share webhook, a process of its own on the campaign's PostgreSQL. */
export class CampaignWebhook {
  /** The process running now (another one after each kill and start). */
  process: ManagedProcess | undefined;

  private constructor(
    private readonly ctx: CampaignContext,
    private readonly supervisor: ProcessSupervisor,
    readonly url: string,
    /** Portal signs its calls with it; the secret scan looks for it in the logs. */
    readonly secret: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Migrates the database and picks the port; `start` launches it. */
  static async prepare(ctx: CampaignContext, supervisor: ProcessSupervisor, postgres: PostgresServer, kmsEnv: NodeJS.ProcessEnv): Promise<CampaignWebhook> {
    const pool = createDatabasePool(postgres.url);
    try {
      await migrate(pool);
    } finally {
      await pool.end();
    }
    ctx.say(`PostgreSQL (${postgres.kind} ${postgres.version ?? ''}) on port ${parseDatabaseUrl(postgres.url).port}`);
    // Below 32768, like every server restarted on its port (stack/free-port.ts).
    const port = await freePortBelow32768();
    const secret = `chaos-whsec-${randomBytes(16).toString('hex')}`;
    const webhook = new CampaignWebhook(ctx, supervisor, `http://127.0.0.1:${port}`, secret, {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      WEBHOOK_HOST: '127.0.0.1',
      WEBHOOK_PORT: String(port),
      WEBHOOK_SECRETS: secret,
      DATABASE_URL: postgres.url,
      // Through the same fault proxy as the workers: a KMS cut reaches the webhook too.
      ...kmsEnv,
      LOG_LEVEL: 'info',
    });
    ctx.cleanups.push(async () => webhook.process?.stop(2_000));
    return webhook;
  }

  /** It applies migrations at start and exits if PostgreSQL is unreachable: try a few times. */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const launched = this.launch();
      this.process = launched;
      try {
        await waitUntil('the webhook', async () => (await fetch(`${this.url}/health`)).ok, 60_000, launched.exited);
        this.supervisor.watch(launched, 'webhook', () => this.start());
        return;
      } catch (error) {
        if (launched.child.exitCode !== null) this.supervisor.recordExit('webhook (at start)', launched.child.exitCode);
        await this.supervisor.killOnPurpose(launched);
        if (attempt >= 3) throw error;
        await sleep(1_000);
      }
    }
  }

  private launch(): ManagedProcess {
    return startProcess('webhook', process.execPath, ['--import', 'tsx', join(ROOT, 'webhook', 'main.ts')], {
      logFile: join(this.ctx.options.runDir, 'webhook.log'),
      env: this.env,
      cwd: ROOT,
    });
  }
}

/** What a campaign worker is told: the servers above, through the KMS proxy. */
function workerEnv(
  ctx: CampaignContext,
  stack: { temporal: { address: string }; simulator: PortalSimulator; kms: CampaignKms; postgres: PostgresServer | undefined; codecKeys: string; bundlePath: string },
): NodeJS.ProcessEnv {
  const { simulator } = stack;
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS: stack.temporal.address,
    TEMPORAL_TASK_QUEUE: TASK_QUEUE,
    // One build, never a second deployed beside it: unversioned (docs/changing-workflows.md).
    TEMPORAL_WORKER_VERSIONING: 'off',
    PAYLOAD_CODEC_KEYS: stack.codecKeys,
    SHARE_SEALING_KEYS: `chaos-seal-1:${randomBytes(32).toString('base64')}`,
    PORTAL_ENCLAVE_URL: simulator.url,
    PORTAL_API_URL: simulator.url,
    PORTAL_TIMEOUT_MS: String(ctx.options.portalTimeoutMs),
    ...stack.kms.env,
    CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
    SIGNING_SHARES_URL: `${simulator.url}/backend/users/{userId}/signing-shares`,
    WORKER_WORKFLOW_BUNDLE: stack.bundlePath,
    WORKER_SHUTDOWN_GRACE_MS: '2000',
    LOG_LEVEL: 'info',
    RECOVERY_APPROVERS: 'ops-alice,ops-bob',
    ...(ctx.options.mode === 'self-managed' ? { BACKUP_MODE: 'self-managed' } : {}),
    CIPHERTEXT_STORES: campaignStores(ctx.options).join(','),
    ...(stack.postgres ? { DATABASE_URL: stack.postgres.url } : {}),
  };
}

/** The worker processes, by index: each one watched, and started again in its slot after a kill. */
export class WorkerPool {
  private readonly workers: ManagedProcess[] = [];

  constructor(
    private readonly ctx: CampaignContext,
    private readonly supervisor: ProcessSupervisor,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  get size(): number {
    return this.workers.length;
  }

  spawn(index: number): ManagedProcess {
    const worker = spawnWorkerProcess(`worker-${index}`, { env: this.env, logFile: join(this.ctx.options.runDir, `worker-${index}.log`) });
    this.workers[index] = worker;
    this.supervisor.watch(worker, `worker-${index}`, () => this.spawn(index));
    return worker;
  }

  kill(index: number): Promise<void> {
    return this.supervisor.killOnPurpose(this.workers[index]);
  }

  killAll(): Promise<void[]> {
    return Promise.all(this.workers.map((worker) => this.supervisor.killOnPurpose(worker)));
  }
}

/** The campaign's operators (their keys seeded on its Vault): a RecoveryClient whose starts they approve, and ops-alice's signer. */
async function approvingRecoveries(vault: VaultServer, client: Client): Promise<{ recoveries: RecoveryClient; operator: OperatorSigner }> {
  const tokens = await seedSigningKeys(vault.addr, vault.rootToken, operatorKeyNames(['ops-alice', 'ops-bob', 'ops-carol']));
  const signerOf = (operator: string) => transitSigner(operator, { addr: vault.addr, token: tokens[operator]! });
  return { recoveries: approvingRecoveriesWith(signerOf, { temporal: client, taskQueue: TASK_QUEUE }).approvingClient(), operator: signerOf('ops-alice') };
}

/** One connection, two clients (with and without the codec) and the campaign's client classes; waits for pollers. */
async function connectClients(ctx: CampaignContext, address: string, codecKeys: string, vault: VaultServer): Promise<CampaignClients> {
  const connection = await Connection.connect({ address });
  ctx.cleanups.push(() => connection.close());
  const client = new Client({ connection, dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })) });
  const clients = {
    client,
    rawClient: new Client({ connection }),
    backups: new BackupClient(client, TASK_QUEUE),
    // Requested by ops-carol, approved by ops-alice and ops-bob before the start returns.
    ...(await approvingRecoveries(vault, client)),
    keys: new KeysClient(client, TASK_QUEUE),
  };
  await waitForPollers(connection, TASK_QUEUE);
  return clients;
}
