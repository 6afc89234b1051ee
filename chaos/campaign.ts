import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import nodeVault from 'node-vault';
import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import { parseDatabaseUrl } from '../db/database-url';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { VaultTransit } from '../adapters/vault/vault-transit';
import { BackupClient } from '../client/backup-client';
import { KeysClient } from '../client/keys-client';
import { RecoveryClient } from '../client/recovery-client';
import { keyRotationPolicy } from '../stack/vault-policies';
import { MAX_LIST_USER_IDS } from '../contracts/batch-backup-api';
import type { CiphertextCounts, RotationReport } from '../contracts/rotate-keys-api';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { startPortalSimulator } from '../simulator/portal-simulator';
import { SeededRandom } from '../simulator/seeded-random';
import type { WebhookCallRecord } from '../simulator/custodian-webhook';
import type { FaultRuleInput } from '../simulator/fault-rules';
import { freePort } from '../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../stack/managed-process';
import { startPostgresServer, type PostgresServer } from '../stack/postgres-server';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import { TcpFaultProxy, type ProxyMode } from '../stack/tcp-fault-proxy';
import { startTemporalCluster, type TemporalCluster, type TemporalServiceName } from '../stack/temporal-cluster';
import { startTemporalDevServer, type TemporalDevServer } from '../stack/temporal-dev-server';
import { setUpAppRole, setUpTransit, startVaultServer } from '../stack/vault-server';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, localKmsClient, setUpAwsKmsKey, startLocalKms } from '../stack/local-kms-server';
import { AwsKmsEnvelope } from '../adapters/kms/aws-kms-envelope';
import type { KmsProvider } from '../adapters/kms/kms-provider';
import { BackupStatusKey, progressQuery } from '../contracts/backup-wallet-api';
import { backupWorkflowId } from '../domain/user-id';
import type { backupWallet } from '../workflows/backup-wallet';
import { percentile } from '../bench/percentile';
import { campaignOptionsSchema, type CampaignOptions, type CampaignOptionsInput } from './campaign-options';
import {
  candidateTokens,
  checkCustodianShares,
  checkRecovery,
  checkUser,
  ciphertextAtPortal,
  INVARIANTS,
  ViolationLog,
  type BackupOutcome,
  type BackupRun,
  type CiphertextLookup,
  type HeldCustodianShare,
  type Invariant,
  type RecoveryOutcome,
} from './invariants';
import { leaksIn, secretsOf, textsIn } from './secret-scan';

const ROOT = join(__dirname, '..');

/** Cluster mode: each Temporal service, and Temporal's PostgreSQL, SIGKILLed and started again on its own. */
export const CLUSTER_FAULTS = [
  'temporal-frontend-kill',
  'temporal-history-kill',
  'temporal-matching-kill',
  'temporal-worker-kill',
  'temporal-postgres-kill',
] as const;
export type ClusterFault = (typeof CLUSTER_FAULTS)[number];
export type InfraFault = 'worker-kill' | 'temporal-restart' | 'vault-cut' | 'vault-restart' | 'postgres-kill' | 'webhook-kill' | ClusterFault;

/** How long one kind of cluster fault held backups up (see `stallsOf`). */
export interface StallFigures {
  count: number;
  /** From the SIGKILL to the first backup that completed after it: p50 and max over the faults of this kind. */
  stallMs: { p50: number; max: number };
  /** From the SIGKILL until the process was started again and the cluster served (history and matching answered). */
  backInServiceMs: { p50: number; max: number };
}

export interface CampaignReport {
  seed: number;
  mode: CampaignOptions['mode'];
  options: Omit<CampaignOptions, 'runDir' | 'quiet'>;
  durationMs: number;
  /** Set when `timeoutMs` ran out: only the backups that ended were checked (the rest are counted here). */
  timedOut?: { ended: number; open: number; neverStarted: number };
  backups: {
    total: number;
    completed: number;
    parkedByCampaign: number;
    other: number;
    doubleStarted: number;
    /** Runs of the users' workflows; more than `total` when a user ran again after its run closed. */
    runs: number;
    /** Users whose workflow ran more than once, one run after the other (a new backup by design, not a violation). */
    usersRunAgain: number;
  };
  operatorRetries: number;
  /** Faults on the simulator's own routes, by kind. */
  portalFaults: Record<string, number>;
  /** Self-managed: faults on Portal's calls to the webhook, by kind (`webhook-status`, …). */
  webhookFaults: Record<string, number>;
  infraFaults: Record<InfraFault, number> & { vaultCutModes: Record<string, number> };
  /** Cluster mode: the server, and how long each kind of Temporal kill stalled backups. */
  cluster?: {
    serverVersion: string;
    historyShards: number;
    /** The gap between consecutive backup completions over the whole run (p50, p95): what "no stall" looks like. */
    completionGapMs: { p50: number; p95: number };
    stalls: Partial<Record<ClusterFault, StallFigures>>;
    /** Every cluster fault: when (ms into the run), and when the cluster served again. */
    events: { kind: ClusterFault; atMs: number; backInServiceMs: number }[];
  };
  /** Client calls that got no answer within a minute and were asked again, by call (see `resilient`). */
  unansweredCalls: Record<string, number>;
  /** Processes that exited without being killed by the campaign (each was started again). */
  unexpectedExits: { process: string; code: number | null; at: number }[];
  /** Self-managed: what Portal delivered to the webhook and what the company holds at the end. */
  selfManaged?: {
    deliveries: { ok: number; failed: number; duplicates: number };
    fetches: { ok: number; failed: number };
    acknowledgedShares: number;
    custodianRows: number;
    clientCiphertextRows: number;
  };
  /** The key rotation started halfway through the backups. */
  rotation?:
    | { status: 'NOT_FINISHED' }
    | {
        status: string;
        durationMs: number;
        /** From the close of the last backup to the rotation's end (the rotation waits for pre-rotation backups, so this is its tail). */
        afterLastBackupMs: number;
        clientCiphertexts: CiphertextCounts;
        custodianShares: CiphertextCounts;
        usersDeferred: number;
        minDecryptionVersionRaised: boolean;
      };
  recoveries: { total: number; completed: number; orphanedSigningPairs: number };
  orphans: number;
  completionMs: { p50: number; p95: number; max: number };
  /** The same over backups the campaign did not park on purpose (a revoked key waits on the operator). */
  completionWithoutOperatorMs: { p50: number; p95: number; max: number };
  /** The slowest completed backups: where their time went (the run's own step durations). */
  slowest: { userId: string; ms: number; revokedByCampaign: boolean; stepDurationsMs: Record<string, number> }[];
  violations: Record<Invariant, number>;
  violationTotal: number;
  violationDetails: ViolationLog['details'];
  runDir: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An attempt of a `resilient` call that got no answer in time (asked again, like UNAVAILABLE). */
class NoAnswerError extends Error {
  override name = 'NoAnswerError';
}

/** Calls that got no answer within ATTEMPT_TIMEOUT_MS and were asked again, by `what` (in the report). */
const unansweredCalls: Record<string, number> = {};
const ATTEMPT_TIMEOUT_MS = 60_000;

/**
 * Retries a client call through a Temporal restart (the server is briefly unreachable). An attempt
 * that gets no answer within a minute is abandoned and asked again (counted in the report), so a
 * call lost with a killed service cannot hold the campaign. (What first looked like such a call in
 * the 1,000-backup cluster runs was the wait for the key rotation, which the watchdog then named;
 * a long wait like that one shows up in `unansweredCalls` as well.)
 */
async function resilient<T>(what: string, call: () => Promise<T>, limitMs = 120_000): Promise<T> {
  const key = Symbol(what);
  activeCalls.set(key, { what, since: Date.now() });
  try {
    return await resilientOnce(what, call, limitMs);
  } finally {
    activeCalls.delete(key);
  }
}

/** The `resilient` calls under way (what, since when), for the campaign's watchdog. */
const activeCalls = new Map<symbol, { what: string; since: number }>();

async function resilientOnce<T>(what: string, call: () => Promise<T>, limitMs: number): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    try {
      const noAnswer = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NoAnswerError(`${what}: no answer in ${ATTEMPT_TIMEOUT_MS} ms`)), ATTEMPT_TIMEOUT_MS);
      });
      return await Promise.race([call(), noAnswer]);
    } catch (error) {
      if (error instanceof NoAnswerError) {
        unansweredCalls[what] = (unansweredCalls[what] ?? 0) + 1;
        if (Date.now() > deadline) throw error;
        continue;
      }
      const name = (error as Error).name;
      if (name === 'BackupActionRejectedError' || Date.now() > deadline) throw error;
      if (name !== 'ServiceError' && name !== 'ConnectionError' && !/UNAVAILABLE|connect|deadline|14 /i.test(String(error))) {
        throw new Error(`${what}: ${String(error)}`);
      }
      await sleep(500);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * A fault campaign: N backups over real servers while workers are SIGKILLed, Temporal and Vault
 * are restarted, Vault is cut off through a TCP proxy, Portal misbehaves per request and some
 * users' keys are revoked mid-run; then every invariant is checked and counted.
 */
export async function runCampaign(input: CampaignOptionsInput): Promise<CampaignReport> {
  const options = campaignOptionsSchema.parse(input);
  for (const what of Object.keys(unansweredCalls)) delete unansweredCalls[what];
  const { runDir } = options;
  mkdirSync(runDir, { recursive: true });
  const random = new SeededRandom(options.seed);
  const say = (line: string) => options.quiet || process.stdout.write(`[chaos] ${line}\n`);
  const started = Date.now();
  const cleanups: (() => Promise<unknown>)[] = [];
  /** Set when the backups are over (or the run failed): processes that exit then are not restarted. */
  let done = false;

  try {
    const selfManaged = options.mode === 'self-managed';
    say(`seed ${options.seed}: ${options.backups} backups (${options.mode}), ${options.workers} workers, run dir ${runDir}`);
    // The servers start side by side (and the workflow bundle is built meanwhile); each one that
    // started is stopped at the end even if another failed.
    const owned = <T extends { stop(): Promise<unknown> }>(server: T) => {
      cleanups.push(() => server.stop());
      return server;
    };
    const bundleBuilt = writeWorkflowBundle(join(runDir, 'workflow-bundle.js'));
    bundleBuilt.catch(() => undefined);
    const starts = await Promise.allSettled([
      options.cluster
        ? // Logs beside the others (the secret scan reads every .log of the run dir).
          startTemporalCluster({ runDir, allowExternalDatabase: false, logLevel: 'warn' }).then(owned)
        : startTemporalDevServer({ logFile: join(runDir, 'temporal.log'), dbFile: join(runDir, 'temporal.db') }).then(owned),
      startVaultServer({ dataDir: join(runDir, 'vault'), logFile: join(runDir, 'vault.log') }).then(owned),
      selfManaged ? startPostgresServer({ allowExternal: false, logFile: join(runDir, 'postgres.log') }).then(owned) : undefined,
    ] as const);
    const failedStart = starts.find((start) => start.status === 'rejected');
    if (failedStart) throw failedStart.reason;
    const [temporal, vault, postgres] = starts.map((start) => (start as PromiseFulfilledResult<unknown>).value) as [
      TemporalDevServer | TemporalCluster,
      Awaited<ReturnType<typeof startVaultServer>>,
      PostgresServer | undefined,
    ];
    const cluster = 'services' in temporal ? temporal : undefined;
    if (cluster) {
      const services = Object.values(cluster.services).map((service) => `${service.name} :${service.grpcPort}`).join(', ');
      say(`Temporal cluster v${cluster.serverVersion} (${cluster.historyShards} shards): ${services}; its PostgreSQL on port ${parseDatabaseUrl(cluster.postgres.url).port}`);
    }
    await setUpTransit(vault.addr, vault.rootToken);
    // With a rotation in the run, the workers' role also holds the rotation policy (in production a
    // rotation runs on a worker pool of its own: docs/restore.md).
    const appRole = await setUpAppRole(vault.addr, vault.rootToken, {
      tokenTtl: options.vaultTokenTtl,
      tokenMaxTtl: '10m',
      ...(options.rotateMidRun ? { policy: keyRotationPolicy('mpc-backup') } : {}),
    });
    const vaultProxy = new TcpFaultProxy({ host: '127.0.0.1', port: vault.port }, await freePort());
    await vaultProxy.start();
    cleanups.push(() => vaultProxy.stop());
    // The KMS the workers and the webhook use, behind its own fault proxy: Vault (AppRole, the
    // proxy above), or local-kms (AWS KMS) with the key alias/mpc-backup; the KMS faults hit it.
    const aws = options.kms === 'aws-kms' ? owned(await startLocalKms({ dataDir: join(runDir, 'local-kms'), logFile: join(runDir, 'local-kms.log') })) : undefined;
    let kmsProxy = vaultProxy;
    let kmsEnv: NodeJS.ProcessEnv = {
      VAULT_ADDR: `http://127.0.0.1:${vaultProxy.port}`,
      VAULT_ROLE_ID: appRole.roleId,
      VAULT_SECRET_ID: appRole.secretId,
      VAULT_TIMEOUT_MS: '2000',
    };
    if (aws) {
      await setUpAwsKmsKey(aws.endpoint, 'alias/mpc-backup');
      kmsProxy = new TcpFaultProxy({ host: '127.0.0.1', port: aws.port }, await freePort());
      await kmsProxy.start();
      const proxy = kmsProxy;
      cleanups.push(() => proxy.stop());
      kmsEnv = {
        KMS_PROVIDER: 'aws-kms',
        AWS_REGION: LOCAL_KMS_REGION,
        AWS_KMS_ENDPOINT: `http://127.0.0.1:${kmsProxy.port}`,
        AWS_KMS_KEY_ALIAS: 'alias/mpc-backup',
        AWS_KMS_TIMEOUT_MS: '2000',
        AWS_ACCESS_KEY_ID: LOCAL_KMS_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_KMS_CREDENTIALS.secretAccessKey,
      };
      say(`KMS: AWS KMS on local-kms ${aws.endpoint} (key alias/mpc-backup)`);
    }
    const kmsName = aws ? 'local-kms' : 'Vault';

    const unexpectedExits: CampaignReport['unexpectedExits'] = [];
    /** Starts a process again if it exits without the campaign killing it (and records that it did). */
    function watch(child: ManagedProcess, name: string, restart: () => Promise<unknown> | unknown) {
      void child.exited.then(async (code) => {
        if (done || killing.has(child)) return;
        unexpectedExits.push({ process: name, code, at: Date.now() - started });
        say(`${name} exited by itself (code ${code}); starting it again`);
        await sleep(1_000);
        if (!done) await Promise.resolve(restart()).catch((error: unknown) => say(`${name} did not start again: ${String(error)}`));
      });
    }
    const killing = new Set<ManagedProcess>();
    const killOnPurpose = async (child: ManagedProcess | undefined) => {
      if (!child) return;
      killing.add(child);
      await child.kill();
    };
    /** Cluster mode: a Temporal service started (again), watched like the workers. */
    const startClusterService = async (name: TemporalServiceName) => {
      await cluster!.start(name);
      watch(cluster!.services[name].process, `temporal-${name}`, () => startClusterService(name));
    };
    if (cluster) for (const service of Object.values(cluster.services)) watch(service.process, `temporal-${service.name}`, () => startClusterService(service.name));
    const clusterEvents: NonNullable<CampaignReport['cluster']>['events'] = [];

    // --- Self-managed: PostgreSQL and the custodian-share webhook, a process of its own ----------
    let webhook: ManagedProcess | undefined;
    let startWebhook = async (): Promise<void> => undefined;
    let webhookReady: Promise<void> = Promise.resolve();
    const webhookSecret = `chaos-whsec-${randomBytes(16).toString('hex')}`;
    let webhookUrl = '';
    if (postgres) {
      const pool = createDatabasePool(postgres.url);
      try {
        await migrate(pool);
      } finally {
        await pool.end();
      }
      say(`PostgreSQL (${postgres.kind} ${postgres.version ?? ''}) on port ${parseDatabaseUrl(postgres.url).port}`);
      const webhookPort = await freePort();
      webhookUrl = `http://127.0.0.1:${webhookPort}`;
      const webhookEnv: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        WEBHOOK_HOST: '127.0.0.1',
        WEBHOOK_PORT: String(webhookPort),
        WEBHOOK_SECRETS: webhookSecret,
        DATABASE_URL: postgres.url,
        // Through the same fault proxy as the workers: a KMS cut reaches the webhook too.
        ...kmsEnv,
        LOG_LEVEL: 'info',
      };
      const launchWebhook = () =>
        startProcess('webhook', process.execPath, ['--import', 'tsx', join(ROOT, 'webhook', 'main.ts')], {
          logFile: join(runDir, 'webhook.log'),
          env: webhookEnv,
          cwd: ROOT,
        });
      startWebhook = async () => {
        // It applies migrations at start and exits if PostgreSQL is unreachable: try a few times.
        for (let attempt = 1; ; attempt++) {
          const launched = launchWebhook();
          webhook = launched;
          try {
            await waitUntil('the webhook', async () => (await fetch(`${webhookUrl}/health`)).ok, 60_000, launched.exited);
            watch(launched, 'webhook', () => startWebhook());
            return;
          } catch (error) {
            if (launched.child.exitCode !== null) {
              unexpectedExits.push({ process: 'webhook (at start)', code: launched.child.exitCode, at: Date.now() - started });
            }
            await killOnPurpose(launched);
            if (attempt >= 3) throw error;
            await sleep(1_000);
          }
        }
      };
      // Ready before the first backup starts; it loads while the simulator and workers start.
      webhookReady = startWebhook().then(() => {
        say(`webhook on ${webhookUrl}`);
      });
      webhookReady.catch(() => undefined);
      cleanups.push(async () => webhook?.stop(2_000));
    }

    const simulator = await startPortalSimulator({
      seed: options.seed,
      ...(selfManaged ? { selfManaged: { webhookUrl, webhookSecret }, retainCustodianShares: true } : {}),
    });
    cleanups.push(() => simulator.close());

    const bundlePath = await bundleBuilt;

    const codecKeys = `chaos-1:${randomBytes(32).toString('base64')}`;
    const workerEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_TASK_QUEUE: 'mpc-backup-chaos',
      // One build, never a second deployed beside it: unversioned (docs/changing-workflows.md).
      TEMPORAL_WORKER_VERSIONING: 'off',
      PAYLOAD_CODEC_KEYS: codecKeys,
      SHARE_SEALING_KEYS: `chaos-seal-1:${randomBytes(32).toString('base64')}`,
      PORTAL_ENCLAVE_URL: simulator.url,
      PORTAL_API_URL: simulator.url,
      PORTAL_TIMEOUT_MS: String(options.portalTimeoutMs),
      ...kmsEnv,
      CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
      SIGNING_SHARES_URL: `${simulator.url}/backend/users/{userId}/signing-shares`,
      WORKER_WORKFLOW_BUNDLE: bundlePath,
      WORKER_SHUTDOWN_GRACE_MS: '2000',
      LOG_LEVEL: 'info',
      ...(selfManaged ? { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: postgres!.url } : {}),
    };
    const workers: ManagedProcess[] = [];
    const spawnWorker = (index: number): ManagedProcess => {
      const worker = spawnWorkerProcess(`worker-${index}`, { env: workerEnv, logFile: join(runDir, `worker-${index}.log`) });
      workers[index] = worker;
      watch(worker, `worker-${index}`, () => spawnWorker(index));
      return worker;
    };
    for (let i = 0; i < options.workers; i++) spawnWorker(i);
    cleanups.push(() => Promise.all(workers.map((worker) => killOnPurpose(worker))));

    const connection = await Connection.connect({ address: temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })) });
    const rawClient = new Client({ connection });
    const backups = new BackupClient(client, 'mpc-backup-chaos');
    const recoveries = new RecoveryClient(client, 'mpc-backup-chaos');
    const keys = new KeysClient(client, 'mpc-backup-chaos');
    await waitForPollers(connection, 'mpc-backup-chaos');
    await webhookReady;

    // --- Users, revocations and Portal faults -------------------------------------------------
    const userIds = Array.from({ length: options.backups }, (_, i) => `chaos-${options.seed}-${i + 1}`);
    for (const id of userIds) simulator.state.seedUser(id);
    const revoked = new Map<string, number>(); // userId → fault rule id
    for (const userId of userIds) {
      if (random.next() < options.revokedShare) revoked.set(userId, 0);
    }
    if (options.revokedShare > 0 && revoked.size === 0) revoked.set(userIds[Math.floor(userIds.length / 2)]!, 0);
    for (const userId of revoked.keys()) {
      // Self-managed: step 3 writes to PostgreSQL, not Portal, so the key fails at step 4 (the draw
      // is made all the same, so the rest of the seeded schedule does not shift).
      const atStore = random.next() < 0.5;
      const route = atStore && !selfManaged ? 'storeCipherText' : 'markPairs';
      revoked.set(userId, simulator.faults.add({ route, kind: 'status', status: 401, body: 'Invalid or revoked API key', userId }).id);
    }
    const doubleStart = new Set(userIds.filter(() => random.next() < options.doubleStartShare));
    const portalKinds: FaultRuleInput[] = [
      { route: '*', kind: 'status', status: 503 },
      { route: '*', kind: 'status', status: 500 },
      { route: '*', kind: 'rate-limit', retryAfterSeconds: 1 },
      { route: '*', kind: 'rate-limit', retryAfterSeconds: null },
      { route: '*', kind: 'html-error', status: 502 },
      { route: '*', kind: 'hang', latencyMs: options.portalTimeoutMs * 3 },
      { route: '*', kind: 'lost-response' },
      { route: '*', kind: 'malformed' },
    ];
    for (const rule of portalKinds) simulator.faults.add({ ...rule, probability: options.portalFaultRate });
    if (options.guaranteeEachFault) {
      const routes = ['backup', 'storeCipherText', 'getCipherText', 'markPairs'] as const;
      portalKinds.forEach((rule, i) => simulator.faults.add({ ...rule, route: routes[i % routes.length]!, count: 1 }));
    }
    if (selfManaged) {
      // Portal's calls to the webhook fail (or misbehave) now and then: each failure answers the
      // step 1 call with FAILED_WEBHOOK, which the worker retries with new pairs.
      const webhookKinds: FaultRuleInput[] = [
        { route: 'webhookDelivery', kind: 'webhook-status', status: 503 },
        { route: 'webhookFetch', kind: 'webhook-status', status: 503 },
        // Past the worker's Portal timeout, as a slow webhook would make /v1/backup.
        { route: 'webhookDelivery', kind: 'webhook-timeout', latencyMs: options.portalTimeoutMs + 1_000 },
        { route: 'webhookDelivery', kind: 'webhook-refused' },
        { route: 'webhookDelivery', kind: 'webhook-lost-response' },
        { route: 'webhookFetch', kind: 'webhook-lost-response' },
        // Must not fail anything: a second delivery of the same share, and one without backupSharePairId.
        { route: 'webhookDelivery', kind: 'webhook-duplicate' },
        { route: 'webhookDelivery', kind: 'webhook-omit-pair-id' },
        // The webhook must refuse these (401, 400) and store nothing.
        { route: 'webhookDelivery', kind: 'webhook-wrong-secret' },
        { route: 'webhookDelivery', kind: 'webhook-malformed' },
      ];
      for (const rule of webhookKinds) simulator.faults.add({ ...rule, probability: options.webhookFaultRate });
      if (options.guaranteeEachFault) {
        // Each kind once, on a user of its own (spread over the run): rules on the same call would
        // fire together, and the first to act (refused, say) would hide the others.
        webhookKinds.forEach((rule, i) => {
          const userId = userIds[Math.floor(((i + 0.5) * userIds.length) / webhookKinds.length)]!;
          simulator.faults.add({ ...rule, userId, count: 1 });
        });
      }
    }

    // --- Infrastructure faults ----------------------------------------------------------------
    const infraFaults: CampaignReport['infraFaults'] = {
      'worker-kill': 0,
      'temporal-restart': 0,
      'vault-cut': 0,
      'vault-restart': 0,
      'postgres-kill': 0,
      'webhook-kill': 0,
      ...(Object.fromEntries(CLUSTER_FAULTS.map((kind) => [kind, 0])) as Record<ClusterFault, number>),
      vaultCutModes: {},
    };
    const injectInfraFault = async (kind: InfraFault) => {
      infraFaults[kind] += 1;
      if (kind === 'worker-kill') {
        const index = Math.floor(random.next() * workers.length);
        await killOnPurpose(workers[index]);
        say(`SIGKILL worker-${index}`);
        await sleep(500 + random.next() * 2_000);
        spawnWorker(index);
      } else if (kind === 'temporal-restart') {
        say('SIGKILL Temporal, start it again on the same database');
        if (!('restart' in temporal)) throw new Error('a cluster is restarted one service at a time');
        await temporal.restart();
      } else if ((CLUSTER_FAULTS as readonly string[]).includes(kind)) {
        const at = Date.now();
        if (kind === 'temporal-postgres-kill') {
          say("SIGKILL Temporal's PostgreSQL (postmaster and backends), start it again on its data directory");
          await cluster!.postgres.kill();
          await sleep(500 + random.next() * 2_500);
          await cluster!.postgres.restart();
          await cluster!.waitReady();
        } else {
          const name = kind.replace(/^temporal-/, '').replace(/-kill$/, '') as TemporalServiceName;
          say(`SIGKILL Temporal ${name}, start it again on the same ports`);
          await killOnPurpose(cluster!.services[name].process);
          await sleep(500 + random.next() * 2_000);
          await startClusterService(name);
        }
        clusterEvents.push({ kind: kind as ClusterFault, atMs: at - started, backInServiceMs: Date.now() - at });
      } else if (kind === 'vault-restart') {
        if (aws) {
          say('SIGKILL local-kms, start it again on its data directory');
          await aws.restart();
        } else {
          say('SIGKILL Vault, start and unseal it again');
          await vault.restart();
        }
      } else if (kind === 'postgres-kill') {
        say('SIGKILL PostgreSQL (postmaster and backends), start it again on its data directory');
        await postgres!.kill();
        await sleep(500 + random.next() * 2_500);
        await postgres!.restart();
      } else if (kind === 'webhook-kill') {
        say('SIGKILL the webhook, start it again');
        await killOnPurpose(webhook);
        await sleep(500 + random.next() * 2_000);
        await startWebhook();
      } else {
        const modes: ProxyMode[] = ['refuse', 'blackhole', 'reset'];
        const mode = modes[Math.floor(random.next() * modes.length)]!;
        infraFaults.vaultCutModes[mode] = (infraFaults.vaultCutModes[mode] ?? 0) + 1;
        say(`${kmsName} cut off (${mode})`);
        await kmsProxy.setMode(mode);
        await sleep(1_000 + random.next() * 4_000);
        await kmsProxy.setMode('pass');
      }
    };
    const milestones: [number, InfraFault][] = options.cluster
      ? // Each Temporal service and its PostgreSQL once, spread over the run, beside the others.
        [
          [0.08, 'worker-kill'],
          [0.16, 'temporal-history-kill'],
          [0.24, 'vault-cut'],
          [0.32, 'temporal-matching-kill'],
          [0.4, 'temporal-frontend-kill'],
          ...(selfManaged ? ([[0.45, 'postgres-kill'], [0.5, 'webhook-kill']] as [number, InfraFault][]) : []),
          [0.56, 'temporal-postgres-kill'],
          [0.64, 'temporal-worker-kill'],
          [0.72, 'vault-restart'],
          [0.8, 'temporal-history-kill'],
          [0.9, 'worker-kill'],
        ]
      : selfManaged
      ? [
          [0.1, 'worker-kill'],
          [0.2, 'postgres-kill'],
          [0.3, 'vault-cut'],
          [0.4, 'webhook-kill'],
          [0.5, 'temporal-restart'],
          [0.6, 'postgres-kill'],
          [0.7, 'vault-restart'],
          [0.85, 'worker-kill'],
        ]
      : [
          [0.1, 'worker-kill'],
          [0.3, 'vault-cut'],
          [0.5, 'temporal-restart'],
          [0.7, 'vault-restart'],
          [0.85, 'worker-kill'],
        ];
    const randomKinds: InfraFault[] = options.cluster
      ? ['worker-kill', 'worker-kill', 'vault-cut', 'vault-restart', ...CLUSTER_FAULTS]
      : ['worker-kill', 'worker-kill', 'vault-cut', 'temporal-restart', 'vault-restart'];
    if (selfManaged) randomKinds.push('postgres-kill', 'postgres-kill', 'webhook-kill');

    // --- Run: a window of backups in flight, an operator, and the fault loop -------------------
    const outcomes = new Map<string, BackupOutcome>();
    const inFlight = new Set<string>();
    let next = 0;
    let operatorRetries = 0;
    const retried = new Set<string>();
    const deadline = started + options.timeoutMs;

    /** Where the main loop waits, for the watchdog in the fault loop (a wait over a minute is logged). */
    let mainStage = { what: 'starting', since: Date.now() };
    const stage = (what: string) => (mainStage = { what, since: Date.now() });
    let lastWatchdog = Date.now();
    const faultLoop = (async () => {
      let nextRandomAt = Date.now() + -Math.log(1 - random.next()) * options.meanFaultIntervalMs;
      while (!done) {
        const fraction = outcomes.size / userIds.length;
        const milestone = milestones[0];
        if (milestone && fraction >= milestone[0]) {
          milestones.shift();
          await injectInfraFault(milestone[1]);
        } else if (Date.now() >= nextRandomAt) {
          await injectInfraFault(randomKinds[Math.floor(random.next() * randomKinds.length)]!);
          nextRandomAt = Date.now() + -Math.log(1 - random.next()) * options.meanFaultIntervalMs;
        }
        if (Date.now() - mainStage.since > 60_000 && Date.now() - lastWatchdog > 60_000) {
          lastWatchdog = Date.now();
          const calls = [...activeCalls.values()].map((c) => `${c.what} ${Math.round((Date.now() - c.since) / 1000)} s`);
          say(`watchdog: the main loop has waited on ${mainStage.what} for ${Math.round((Date.now() - mainStage.since) / 1000)} s; calls under way: ${calls.join(', ') || 'none'}; in flight: ${[...inFlight].join(', ')}`);
        }
        await sleep(200);
      }
    })();

    /** The run ids the starts returned, by user (visibility lists the runs too; this misses none it lags on). */
    const startedRunIds = new Map<string, Set<string>>();
    const start = async (userId: string) => {
      inFlight.add(userId);
      const started = await Promise.all(
        Array.from({ length: doubleStart.has(userId) ? 2 : 1 }, () => resilient('start', () => backups.startBackupWorkflow(userId))),
      );
      startedRunIds.set(userId, new Set(started.map((run) => run.runId)));
    };

    const poll = async (userId: string) => {
      const handle = client.workflow.getHandle(`backup-${userId}`);
      const description = await resilient('describe', () => handle.describe());
      const status = description.typedSearchAttributes.get(BackupStatusKey);
      if (description.status.name === 'RUNNING') {
        if (status !== 'NEEDS_ATTENTION') return;
        const ruleId = revoked.get(userId);
        if (ruleId === undefined || retried.has(userId)) {
          // Parked for a reason the campaign did not cause: record it and stop waiting.
          outcomes.set(userId, await finalOutcome(userId, 'NEEDS_ATTENTION'));
          inFlight.delete(userId);
          return;
        }
        // The operator restores the key, then resumes the backup.
        simulator.faults.remove(ruleId);
        retried.add(userId);
        await resilient('retry', () => backups.retryBackup(userId, 'chaos-operator'));
        operatorRetries += 1;
        return;
      }
      outcomes.set(userId, await finalOutcome(userId, description.status.name === 'COMPLETED' ? 'COMPLETED' : (status ?? description.status.name)));
      inFlight.delete(userId);
    };

    const finalOutcome = async (userId: string, status: string): Promise<BackupOutcome> => {
      const handle = client.workflow.getHandle(`backup-${userId}`);
      const outcome: BackupOutcome = { userId, status, revokedByCampaign: revoked.has(userId), runs: [] };
      if (status === 'COMPLETED') outcome.result = await resilient('result', () => handle.result());
      else if (status === 'NEEDS_ATTENTION') {
        const progress = await resilient('progress', () => handle.query(progressQuery));
        outcome.failure = `parked at ${progress.step}: ${progress.lastError?.type}: ${progress.lastError?.message}`;
      } else {
        outcome.failure = await backups.waitForBackup(userId).then(
          () => 'completed',
          (e: Error) => e.message,
        );
      }
      const description = await resilient('describe', () => handle.describe());
      outcome.startedAt = description.startTime.getTime();
      outcome.closedAt = description.closeTime?.getTime();
      // Every run of the user: no start happens after this (both starts of a user were awaited).
      const runIds = new Set([description.runId, ...(startedRunIds.get(userId) ?? [])]);
      await resilient('list runs', async () => {
        for await (const execution of client.workflow.list({ query: `WorkflowId = '${backupWorkflowId(userId)}'` })) runIds.add(execution.runId);
      });
      outcome.runs = await Promise.all([...runIds].map((runId) => recordRun(userId, runId)));
      return outcome;
    };

    /** One run as Temporal holds it (describe reads the run itself, not visibility): times, status, its pairs. */
    const recordRun = async (userId: string, runId: string): Promise<BackupRun> => {
      const handle = client.workflow.getHandle<typeof backupWallet>(backupWorkflowId(userId), runId);
      const description = await resilient('describe run', () => handle.describe());
      const execution = description.status.name;
      const status = execution === 'COMPLETED' ? 'COMPLETED' : (description.typedSearchAttributes.get(BackupStatusKey) ?? execution);
      const run: BackupRun = { runId, startedAt: description.startTime.getTime(), status };
      if (description.closeTime) run.closedAt = description.closeTime.getTime();
      if (execution === 'COMPLETED') {
        const result = await resilient('result', () => handle.result());
        run.result = result;
        run.pairIds = Object.values(result.pairIds);
      } else if (execution === 'RUNNING') {
        // Parked (or still going): its step-1 pairs, if it got that far.
        const progress = await resilient('progress', () => handle.query(progressQuery));
        if (progress.pairIds) run.pairIds = Object.values(progress.pairIds);
      } else {
        run.failure = await resilient('result', () => handle.result()).then(
          () => 'completed',
          (error: Error) => error.message,
        );
      }
      return run;
    };

    // Halfway through the backups, the Transit key is rotated: every stored ciphertext is rewrapped
    // while backups, faults and restarts go on, and min_decryption_version is raised at the end, so
    // a ciphertext the rotation missed would no longer decrypt (checked with the invariants).
    let rotationStarted = false;
    const startRotationWhenHalfway = async () => {
      if (!options.rotateMidRun || rotationStarted || outcomes.size < userIds.length / 2) return;
      rotationStarted = true;
      const listed = userIds.slice(0, MAX_LIST_USER_IDS);
      await resilient('rotate', () =>
        keys.rotate({ source: { kind: 'list', userIds: listed }, usersPerMinute: 6_000, concurrency: 2, usersPerActivity: 2, raiseMinDecryptionVersion: true, everyUser: true, deferredRecheckMs: 2_000, deferredRecheckMaxMs: 10_000 }),
      );
      say(`key rotation started over ${listed.length} users, ${outcomes.size} backups ended`);
    };

    let lastReport = 0;
    let timedOut = false;
    while (outcomes.size < userIds.length) {
      if (Date.now() > deadline) {
        // Checks what ended; the open and unstarted backups are reported, not checked.
        timedOut = true;
        say(`time is up: ${outcomes.size} backups ended, ${inFlight.size} still open, ${userIds.length - next} never started`);
        break;
      }
      // A milestone fault that is due holds new starts back until it fires: each one surely fires
      // while backups are open, however fast they end (the slices count on every kind firing).
      const milestoneDue = milestones[0] !== undefined && outcomes.size / userIds.length >= milestones[0][0];
      stage('starts');
      while (!milestoneDue && inFlight.size < options.concurrency && next < userIds.length) await start(userIds[next++]!);
      stage('polls');
      await Promise.all([...inFlight].map((userId) => poll(userId)));
      stage('rotation start');
      await startRotationWhenHalfway();
      stage('loop');
      if (Date.now() - lastReport > 5_000) {
        say(`${outcomes.size}/${userIds.length} done, ${inFlight.size} in flight`);
        lastReport = Date.now();
      }
      await sleep(250);
    }
    // The rotation ends once the last pre-rotation backup has (it defers those users until then).
    let rotationReport: RotationReport | undefined;
    stage('the key rotation to end');
    if (rotationStarted && !timedOut) {
      rotationReport = await resilient('rotation report', () => keys.wait(), Math.max(60_000, deadline - Date.now()));
      say(`key rotation ${rotationReport.status}: ${JSON.stringify(rotationReport.counts.clientCiphertexts)}, min_decryption_version ${JSON.stringify(rotationReport.minDecryptionVersion)}`);
    }

    // Recoveries of a share of the completed users, under the same faults (no fresh backup, so each
    // user keeps exactly one backup run for the checks below).
    const recoveryOutcomes = new Map<string, RecoveryOutcome>();
    if (!timedOut && options.recoveryShare > 0) {
      const candidates = [...outcomes.values()].filter((o) => o.status === 'COMPLETED' && !o.revokedByCampaign).map((o) => o.userId);
      const chosen = candidates.filter(() => random.next() < options.recoveryShare);
      if (chosen.length === 0 && candidates.length > 0) chosen.push(candidates[0]!);
      say(`recovering ${chosen.length} wallets`);
      stage('recoveries');
      const open = new Set<string>();
      let index = 0;
      while ((index < chosen.length || open.size > 0) && Date.now() < deadline) {
        while (open.size < options.concurrency && index < chosen.length) {
          const userId = chosen[index++]!;
          recoveryOutcomes.set(userId, { userId, status: 'RUNNING', startedAt: Date.now() });
          await resilient('recover', () => recoveries.startRecovery(userId, { freshBackup: false }));
          open.add(userId);
        }
        for (const userId of [...open]) {
          const status = await resilient('recovery status', () => recoveries.getRecoveryStatus(userId));
          const outcome = recoveryOutcomes.get(userId)!;
          if (status.execution === 'RUNNING' && status.status !== 'NEEDS_ATTENTION') continue;
          outcome.status = status.execution === 'COMPLETED' ? 'COMPLETED' : (status.status ?? status.execution);
          if (status.result) outcome.result = status.result;
          const failure = status.failure ?? (status.progress?.lastError ? `parked at ${status.progress.lastError.step}: ${status.progress.lastError.type}: ${status.progress.lastError.message}` : undefined);
          if (failure) outcome.failure = failure;
          open.delete(userId);
        }
        await sleep(250);
      }
      for (const userId of open) recoveryOutcomes.get(userId)!.failure = 'still running when time ran out';
    }

    done = true;
    await faultLoop;
    await kmsProxy.setMode('pass');
    if (timedOut) {
      // Open backups would go on changing Portal and the database while they are checked.
      await Promise.all(workers.map((worker) => killOnPurpose(worker)));
      await sleep(1_000);
    } else {
      say('all backups ended; checking invariants');
    }

    // --- Invariants ---------------------------------------------------------------------------
    const violations = new ViolationLog();
    const transit: KmsProvider = aws
      ? new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint: aws.endpoint, keyAlias: 'alias/mpc-backup', timeoutMs: 10_000 }, undefined, localKmsClient(aws.endpoint))
      : new VaultTransit(
          { endpoint: vault.addr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 10_000 },
          new StaticTokenAuth(vault.rootToken),
          nodeVault({ endpoint: vault.addr, debug: () => undefined } as nodeVault.VaultOptions),
        );
    // Portal's calls to the webhook so far, before the tables are read: a share acknowledged in
    // these was committed before the read. (Time ran out: the workers were stopped first, so no
    // pair is marked after the read either.)
    const deliveriesByUser = new Map<string, WebhookCallRecord[]>();
    for (const call of simulator.webhookDeliveries) {
      const list = deliveriesByUser.get(call.userId) ?? [];
      list.push(call);
      deliveriesByUser.set(call.userId, list);
    }
    // Self-managed: the company's tables, read once (client ciphertexts by user, custodian shares by client).
    const clientCiphertexts = new Map<string, Map<string, string>>();
    const custodianRows = new Map<string, HeldCustodianShare[]>();
    let clientCiphertextRows = 0;
    if (postgres) {
      const pool = createDatabasePool(postgres.url, { statementTimeoutMs: 60_000 });
      try {
        const ciphertexts = await pool.query<{ user_id: string; pair_id: string; ciphertext: string }>(
          'SELECT user_id, pair_id, ciphertext FROM client_ciphertexts',
        );
        clientCiphertextRows = ciphertexts.rows.length;
        for (const row of ciphertexts.rows) {
          if (!clientCiphertexts.has(row.user_id)) clientCiphertexts.set(row.user_id, new Map());
          clientCiphertexts.get(row.user_id)!.set(row.pair_id, row.ciphertext);
        }
        const shares = await pool.query<{ client_id: string; backup_method: string; pair_id: string; encrypted_share: string; share_sha256: string }>(
          'SELECT client_id, backup_method, pair_id, encrypted_share, share_sha256 FROM custodian_shares',
        );
        for (const row of shares.rows) {
          const list = custodianRows.get(row.client_id) ?? [];
          list.push({ backupMethod: row.backup_method, pairId: row.pair_id, encryptedShare: row.encrypted_share, shareSha256: row.share_sha256 });
          custodianRows.set(row.client_id, list);
        }
      } finally {
        await pool.end();
      }
    }
    let orphans = 0;
    let runCount = 0;
    let usersRunAgain = 0;
    let acknowledgedShares = 0;
    for (const userId of userIds.slice(0, next)) {
      const simClient = simulator.state.user(userId)!;
      const ciphertextOf: CiphertextLookup = postgres ? (pair) => clientCiphertexts.get(userId)?.get(pair.id) : ciphertextAtPortal;
      const outcome = outcomes.get(userId);
      if (outcome) {
        const checked = await checkUser(simClient, outcome, transit, violations, ciphertextOf);
        orphans += checked.orphans;
        runCount += checked.runs;
        if (checked.runs > 1) usersRunAgain += 1;
      }
      // Whether the backup ended or not: a share acknowledged to Portal must be held.
      if (selfManaged) {
        const held = custodianRows.get(simClient.clientId) ?? [];
        acknowledgedShares += (await checkCustodianShares(simClient, deliveriesByUser.get(userId) ?? [], held, transit, violations)).acknowledged;
      }
      // Every run's history (the latest run's only, for a backup that did not end in time).
      for (const runId of outcome ? outcome.runs.map((run) => run.runId) : [undefined]) {
        const history = await resilient('history', () => rawClient.workflow.getHandle(backupWorkflowId(userId), runId).fetchHistory());
        const leaks = leaksIn(textsIn(history), [...secretsOf(simClient), vault.rootToken]);
        for (const leak of leaks) violations.add('secret-in-history', `a secret of ${leak.length} characters`, userId);
      }
    }
    if (rotationStarted) {
      const problems = !rotationReport
        ? ['the rotation did not finish in time']
        : [
            ...(rotationReport.status !== 'COMPLETED' ? [`ended ${rotationReport.status}`] : []),
            ...(rotationReport.counts.clientCiphertexts.failed + rotationReport.counts.custodianShares.failed + rotationReport.counts.usersFailed > 0
              ? [`${rotationReport.failures.length} failures, e.g. ${rotationReport.failures[0]?.reason ?? ''}`]
              : []),
            ...(!rotationReport.minDecryptionVersion.raised ? [`min_decryption_version not raised: ${JSON.stringify(rotationReport.minDecryptionVersion)}`] : []),
          ];
      for (const problem of problems) violations.add('rotation-not-verified', problem);
    }
    for (const outcome of recoveryOutcomes.values()) {
      const simClient = simulator.state.user(outcome.userId)!;
      checkRecovery(simClient, outcome, outcomes.get(outcome.userId)?.result, violations);
      const history = await resilient('history', () => rawClient.workflow.getHandle(`recover-${outcome.userId}`).fetchHistory());
      for (const leak of leaksIn(textsIn(history), [...secretsOf(simClient), vault.rootToken])) {
        violations.add('secret-in-history', `recovery: a secret of ${leak.length} characters`, outcome.userId);
      }
    }
    const allSecrets = new Set(userIds.flatMap((id) => secretsOf(simulator.state.user(id)!)));
    for (const file of readdirSync(runDir).filter((name) => name.endsWith('.log'))) {
      const text = readFileSync(join(runDir, file), 'utf8');
      for (const token of candidateTokens(text)) {
        if (allSecrets.has(token)) violations.add('secret-in-logs', `${file}: a secret of ${token.length} characters`);
      }
      for (const token of [vault.rootToken, appRole.secretId, LOCAL_KMS_CREDENTIALS.secretAccessKey]) {
        if (text.includes(token)) violations.add('secret-in-logs', `${file}: a KMS credential`);
      }
      if (selfManaged && text.includes(webhookSecret)) violations.add('secret-in-logs', `${file}: the webhook secret`);
      const databasePassword = postgres ? parseDatabaseUrl(postgres.url).password : undefined;
      if (databasePassword && text.includes(databasePassword)) violations.add('secret-in-logs', `${file}: the database password`);
      const temporalDatabasePassword = cluster ? parseDatabaseUrl(cluster.postgres.url).password : undefined;
      if (temporalDatabasePassword && text.includes(temporalDatabasePassword)) violations.add('secret-in-logs', `${file}: Temporal's database password`);
    }

    const completedTimes = [...outcomes.values()]
      .filter((o) => o.status === 'COMPLETED' && o.closedAt && o.startedAt)
      .map((o) => ({ outcome: o, ms: o.closedAt! - o.startedAt! }))
      .sort((a, b) => a.ms - b.ms);
    const durations = completedTimes.map((t) => t.ms);
    const withoutOperator = completedTimes.filter((t) => !t.outcome.revokedByCampaign).map((t) => t.ms);
    const statuses = [...outcomes.values()];
    const { runDir: _dir, quiet: _quiet, ...reported } = options;
    const firedByKind = Object.entries(simulator.faults.firedByKind());
    const deliveries = simulator.webhookDeliveries;
    const report: CampaignReport = {
      seed: options.seed,
      mode: options.mode,
      options: reported,
      durationMs: Date.now() - started,
      ...(timedOut ? { timedOut: { ended: outcomes.size, open: inFlight.size, neverStarted: userIds.length - next } } : {}),
      backups: {
        total: userIds.length,
        completed: statuses.filter((o) => o.status === 'COMPLETED').length,
        parkedByCampaign: statuses.filter((o) => o.status === 'NEEDS_ATTENTION' && o.revokedByCampaign).length,
        other: statuses.filter((o) => o.status !== 'COMPLETED' && !(o.status === 'NEEDS_ATTENTION' && o.revokedByCampaign)).length,
        doubleStarted: doubleStart.size,
        runs: runCount,
        usersRunAgain,
      },
      operatorRetries,
      portalFaults: Object.fromEntries(firedByKind.filter(([kind]) => !kind.startsWith('webhook-'))),
      webhookFaults: Object.fromEntries(firedByKind.filter(([kind]) => kind.startsWith('webhook-'))),
      infraFaults,
      unexpectedExits,
      unansweredCalls: { ...unansweredCalls },
      ...(cluster ? { cluster: { serverVersion: cluster.serverVersion, historyShards: cluster.historyShards, ...stallsOf(clusterEvents, statuses, started) } } : {}),
      ...(selfManaged
        ? {
            selfManaged: {
              deliveries: {
                ok: deliveries.filter((call) => call.call === 'backup' && call.outcome === 'ok').length,
                failed: deliveries.filter((call) => call.call === 'backup' && call.outcome === 'failed').length,
                duplicates: deliveries.filter((call) => call.duplicate).length,
              },
              fetches: {
                ok: deliveries.filter((call) => call.call === 'fetch' && call.outcome === 'ok').length,
                failed: deliveries.filter((call) => call.call === 'fetch' && call.outcome === 'failed').length,
              },
              acknowledgedShares,
              custodianRows: [...custodianRows.values()].reduce((sum, rows) => sum + rows.length, 0),
              clientCiphertextRows,
            },
          }
        : {}),
      ...(rotationStarted
        ? {
            rotation: rotationReport
              ? {
                  status: rotationReport.status,
                  durationMs: rotationReport.durationMs,
                  afterLastBackupMs: Date.parse(rotationReport.finishedAt) - Math.max(...[...outcomes.values()].map((o) => o.closedAt ?? 0)),
                  clientCiphertexts: rotationReport.counts.clientCiphertexts,
                  custodianShares: rotationReport.counts.custodianShares,
                  usersDeferred: rotationReport.counts.usersDeferred,
                  minDecryptionVersionRaised: rotationReport.minDecryptionVersion.raised === true,
                }
              : { status: 'NOT_FINISHED' },
          }
        : {}),
      recoveries: {
        total: recoveryOutcomes.size,
        completed: [...recoveryOutcomes.values()].filter((o) => o.status === 'COMPLETED').length,
        orphanedSigningPairs: [...recoveryOutcomes.values()].reduce((sum, o) => sum + (o.result?.orphanedSigningPairIds.length ?? 0), 0),
      },
      orphans,
      completionMs: { p50: percentile(durations, 50), p95: percentile(durations, 95), max: durations.at(-1) ?? 0 },
      completionWithoutOperatorMs: { p50: percentile(withoutOperator, 50), p95: percentile(withoutOperator, 95), max: withoutOperator.at(-1) ?? 0 },
      slowest: completedTimes.slice(-10).reverse().map(({ outcome, ms }) => ({
        userId: outcome.userId,
        ms,
        revokedByCampaign: outcome.revokedByCampaign,
        stepDurationsMs: { ...(outcome.result?.stepDurationsMs ?? {}) },
      })),
      violations: violations.counts,
      violationTotal: violations.total,
      violationDetails: violations.details,
      runDir,
    };
    writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 2));
    return report;
  } finally {
    done = true;
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

/**
 * How long each kind of cluster fault stalled backups: from the SIGKILL to the first backup that
 * completed after it (while none completes, backups are held up), beside the gap between
 * consecutive completions over the whole run, which is what the same measure gives with no fault.
 */
export function stallsOf(
  events: { kind: ClusterFault; atMs: number; backInServiceMs: number }[],
  outcomes: BackupOutcome[],
  startedAt: number,
): Pick<NonNullable<CampaignReport['cluster']>, 'completionGapMs' | 'stalls' | 'events'> {
  const completions = outcomes
    .filter((o) => o.status === 'COMPLETED' && o.closedAt !== undefined)
    .map((o) => o.closedAt! - startedAt)
    .sort((a, b) => a - b);
  const gaps = completions.slice(1).map((at, i) => at - completions[i]!);
  gaps.sort((a, b) => a - b);
  const stalls: Partial<Record<ClusterFault, StallFigures>> = {};
  for (const kind of CLUSTER_FAULTS) {
    const ofKind = events.filter((event) => event.kind === kind);
    if (ofKind.length === 0) continue;
    const stallTimes = ofKind
      .map((event) => completions.find((at) => at >= event.atMs))
      .map((at, i) => (at === undefined ? undefined : at - ofKind[i]!.atMs))
      .filter((ms): ms is number => ms !== undefined)
      .sort((a, b) => a - b);
    const back = ofKind.map((event) => event.backInServiceMs).sort((a, b) => a - b);
    stalls[kind] = {
      count: ofKind.length,
      stallMs: { p50: percentile(stallTimes, 50), max: stallTimes.at(-1) ?? 0 },
      backInServiceMs: { p50: percentile(back, 50), max: back.at(-1) ?? 0 },
    };
  }
  return { completionGapMs: { p50: percentile(gaps, 50), p95: percentile(gaps, 95) }, stalls, events };
}

/** The KMS whose cuts and restarts the 'vault-cut' and 'vault-restart' faults counted (older reports: Vault). */
function kmsLabel(report: CampaignReport): string {
  return report.options.kms === 'aws-kms' ? 'KMS (local-kms)' : 'Vault';
}

export function summarize(report: CampaignReport): string {
  const lines = [
    `fault campaign, seed ${report.seed}: ${report.backups.total} backups in ${(report.durationMs / 1000).toFixed(1)} s`,
    `  completed ${report.backups.completed}, parked by the campaign ${report.backups.parkedByCampaign}, other ${report.backups.other}` +
      ` (double-started ${report.backups.doubleStarted}, operator retries ${report.operatorRetries})`,
    `  runs ${report.backups.runs}: ${report.backups.usersRunAgain} users ran again after their run had closed (a new backup, not a violation)`,
    `  Portal faults: ${Object.entries(report.portalFaults).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    `  process faults: worker SIGKILL ${report.infraFaults['worker-kill']}, Temporal restart ${report.infraFaults['temporal-restart']}, ` +
      `${kmsLabel(report)} restart ${report.infraFaults['vault-restart']}, ${kmsLabel(report)} cut ${report.infraFaults['vault-cut']} ` +
      (report.infraFaults['vault-cut'] > 0 ? `(${Object.entries(report.infraFaults.vaultCutModes).map(([k, v]) => `${k} ${v}`).join(', ')})` : '') +
      (report.mode === 'self-managed'
        ? `, PostgreSQL SIGKILL ${report.infraFaults['postgres-kill']}, webhook SIGKILL ${report.infraFaults['webhook-kill']}`
        : ''),
    ...(report.cluster
      ? [
          `  Temporal cluster v${report.cluster.serverVersion}, ${report.cluster.historyShards} shards; SIGKILL and restart: ` +
            CLUSTER_FAULTS.map((kind) => `${kind.replace(/^temporal-/, '').replace(/-kill$/, '')} ${report.infraFaults[kind]}`).join(', '),
          `  stalls (SIGKILL → next completed backup; p50/max ms; back in service p50/max): ` +
            Object.entries(report.cluster.stalls)
              .map(([kind, f]) => `${kind.replace(/^temporal-/, '').replace(/-kill$/, '')} ${f.stallMs.p50}/${f.stallMs.max} (${f.backInServiceMs.p50}/${f.backInServiceMs.max})`)
              .join(', ') +
            `; gap between consecutive completions over the run p50 ${report.cluster.completionGapMs.p50}, p95 ${report.cluster.completionGapMs.p95}`,
        ]
      : []),
    ...(report.selfManaged
      ? [
          `  webhook faults: ${Object.entries(report.webhookFaults).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
          `  webhook calls: deliveries ok ${report.selfManaged.deliveries.ok}, failed ${report.selfManaged.deliveries.failed} ` +
            `(duplicates ${report.selfManaged.deliveries.duplicates}); fetches ok ${report.selfManaged.fetches.ok}, failed ${report.selfManaged.fetches.failed}; ` +
            `custodian shares acknowledged ${report.selfManaged.acknowledgedShares}, rows ${report.selfManaged.custodianRows}; ` +
            `client ciphertext rows ${report.selfManaged.clientCiphertextRows}`,
        ]
      : []),
    ...(Object.keys(report.unansweredCalls ?? {}).length > 0
      ? [`  calls asked again after a minute without an answer: ${Object.entries(report.unansweredCalls).map(([what, n]) => `${what} ${n}`).join(', ')}`]
      : []),
    ...(report.unexpectedExits.length > 0
      ? [`  processes that exited by themselves: ${report.unexpectedExits.map((exit) => `${exit.process} (code ${exit.code}, at ${exit.at} ms)`).join(', ')}`]
      : []),
    ...(report.rotation
      ? [
          'clientCiphertexts' in report.rotation
            ? `  key rotation mid-run: ${report.rotation.status} in ${(report.rotation.durationMs / 1000).toFixed(1)} s, ` +
              `${(report.rotation.afterLastBackupMs / 1000).toFixed(1)} s after the last backup closed; client ciphertexts rewrapped ` +
              `${report.rotation.clientCiphertexts.rewrapped}, already current ${report.rotation.clientCiphertexts.alreadyCurrent}, verified ` +
              `${report.rotation.clientCiphertexts.verified}, failed ${report.rotation.clientCiphertexts.failed}; custodian shares verified ` +
              `${report.rotation.custodianShares.verified}; users deferred ${report.rotation.usersDeferred}; min_decryption_version raised ${report.rotation.minDecryptionVersionRaised}`
            : '  key rotation mid-run: did not finish',
        ]
      : []),
    `  recoveries: ${report.recoveries.completed}/${report.recoveries.total} completed, orphaned signing pairs named ${report.recoveries.orphanedSigningPairs}`,
    `  orphaned pairs ${report.orphans}; completion p50 ${report.completionMs.p50} ms, p95 ${report.completionMs.p95} ms, max ${report.completionMs.max} ms` +
      ` (without the users parked on purpose: p50 ${report.completionWithoutOperatorMs.p50}, p95 ${report.completionWithoutOperatorMs.p95}, max ${report.completionWithoutOperatorMs.max} ms)`,
    `  violations: ${INVARIANTS.map((name) => `${name} ${report.violations[name]}`).join(', ')}`,
    ...(report.timedOut
      ? [
          `  INCOMPLETE: time ran out; ${report.timedOut.ended} backups ended and were checked, ` +
            `${report.timedOut.open} were still open, ${report.timedOut.neverStarted} never started`,
        ]
      : []),
    report.violationTotal > 0
      ? `  FAIL: ${report.violationTotal} violations (see report.json)`
      : report.timedOut
        ? '  zero violations among the backups checked, but not a pass: the campaign did not finish'
        : '  PASS: zero violations',
    `  reproduce: npm run chaos -- --backups ${report.backups.total} --seed ${report.seed}${report.mode === 'self-managed' ? ' --self-managed' : ''}${report.cluster ? ' --cluster' : ''}${report.options.kms === 'aws-kms' ? ' --kms aws-kms' : ''}${report.options.rotateMidRun ? '' : ' --no-rotation'}`,
  ];
  return lines.join('\n');
}
