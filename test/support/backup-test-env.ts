import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client, Connection, ServiceError } from '@temporalio/client';
import { DefaultLogger, Runtime, type LogEntry, type NativeConnection } from '@temporalio/worker';
import { inject } from 'vitest';
import { BackupClient } from '../../client/backup-client';
import { backupDataConverter } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { freePort } from '../../stack/free-port';
import type { ManagedProcess } from '../../stack/managed-process';
import { spawnWorkerProcess } from '../../stack/worker-process';
import { TcpFaultProxy } from '../../stack/tcp-fault-proxy';
import { startPortalSimulator, type PortalSimulator, type PortalSimulatorOptions } from '../../simulator/portal-simulator';
import { loadWorkerConfig } from '../../worker/config';
import { connectWorker, createBackupWorker, openDatabase } from '../../worker/create-worker';
import { AwsKmsEnvelope } from '../../adapters/kms/aws-kms-envelope';
import type { KmsProvider, KmsProviderKind } from '../../adapters/kms/kms-provider';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { TEST_APPROVERS } from './operator-names';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, localKmsClient, setUpAwsKmsKey } from '../../stack/local-kms-server';

/** Both KMS providers, for suites that run with each (`describe.each(KMS_PROVIDERS)`). */
export const KMS_PROVIDERS: KmsProviderKind[] = ['vault-transit', 'aws-kms'];

/** What a stored ciphertext of the provider looks like (kms-ciphertext.ts). */
export function ciphertextPattern(provider: KmsProviderKind): RegExp {
  return provider === 'vault-transit' ? /^vault:v\d+:/ : /^awskms:e1:v\d+:/;
}

/**
 * The worker environment of a KMS provider on the test stack, and an admin view of the same key for
 * the test's own checks. AWS KMS: local-kms behind `proxyPort`, with a key alias of its own (its
 * version 1 created here), so that rotations in one file do not touch another's key.
 */
export async function kmsForTest(provider: KmsProviderKind, options: { vaultPort: number; kmsPort: number; keySuffix: string }): Promise<{ env: NodeJS.ProcessEnv; admin: KmsProvider }> {
  if (provider === 'vault-transit') {
    return {
      env: { KMS_PROVIDER: 'vault-transit', VAULT_ADDR: `http://127.0.0.1:${options.vaultPort}`, VAULT_TOKEN: inject('vaultToken'), VAULT_TIMEOUT_MS: '2000' },
      admin: new VaultTransit({ endpoint: inject('vaultAddr'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 5_000 }, new StaticTokenAuth(inject('vaultToken'))),
    };
  }
  const keyAlias = `alias/mpc-backup-test/${options.keySuffix}`;
  await setUpAwsKmsKey(inject('kmsEndpoint'), keyAlias);
  return {
    env: {
      KMS_PROVIDER: 'aws-kms',
      AWS_REGION: LOCAL_KMS_REGION,
      AWS_KMS_ENDPOINT: `http://127.0.0.1:${options.kmsPort}`,
      AWS_KMS_KEY_ALIAS: keyAlias,
      AWS_KMS_TIMEOUT_MS: '2000',
      AWS_ACCESS_KEY_ID: LOCAL_KMS_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_KMS_CREDENTIALS.secretAccessKey,
    },
    admin: new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint: inject('kmsEndpoint'), keyAlias, timeoutMs: 5_000 }, undefined, localKmsClient(inject('kmsEndpoint'))),
  };
}


/** Every log line the SDK emitted in this test process, for the secret scans. */
export const capturedLogs: string[] = [];
let runtimeInstalled = false;

function installRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry: LogEntry) => {
      capturedLogs.push(`${entry.level} ${entry.message} ${JSON.stringify(entry.meta ?? {})}`);
    }),
    shutdownSignals: [],
  });
  runtimeInstalled = true;
}

export interface BackupTestEnv {
  simulator: PortalSimulator;
  backups: BackupClient;
  /** A client without the payload codec: sees history exactly as the server stores it. */
  rawClient: Client;
  /** Vault as the worker sees it: through a fault proxy the test can switch. */
  vaultProxy: TcpFaultProxy;
  /** The KMS provider the worker uses (KMS_PROVIDER). */
  kmsProvider: KmsProviderKind;
  /** That KMS as the worker sees it (the Vault proxy, or local-kms's): switch it for KMS outages. */
  kmsProxy: TcpFaultProxy;
  /** The same key with admin credentials, not through the proxy: the test's own decrypts and checks. */
  kms: KmsProvider;
  vault: { addr: string; token: string };
  taskQueue: string;
  workerEnv: NodeJS.ProcessEnv;
  seedUser(prefix?: string): string;
  /**
   * Starts a worker in this process (default) and returns a stop function; `extraEnv` on top of
   * the env's worker environment (a versioned worker of a build: TEMPORAL_WORKER_VERSIONING=on, …).
   */
  startWorker(extraEnv?: NodeJS.ProcessEnv): Promise<() => Promise<void>>;
  /** The same, with the worker's NativeConnection (a backend that runs a worker starts backups eagerly on it). */
  startWorkerOnConnection(extraEnv?: NodeJS.ProcessEnv): Promise<{ nativeConnection: NativeConnection; stop: () => Promise<void> }>;
  /** Starts the real worker entry point as a child process, for crash tests. */
  spawnWorker(name: string): ManagedProcess;
  close(): Promise<void>;
}

/**
 * One test file's slice of the real stack: a fresh Portal simulator, a task queue of its own on the
 * shared Temporal dev server, the shared Vault behind a fault proxy, and the real worker wiring
 * (configuration read by loadWorkerConfig from environment variables, as in production).
 */
export async function createBackupTestEnv(
  options: {
    portalTimeoutMs?: number;
    temporalAddress?: string;
    /** On the shared Temporal cluster (four temporal-server processes on PostgreSQL) instead of the dev server. */
    cluster?: boolean;
    workerEnv?: NodeJS.ProcessEnv;
    simulator?: Partial<PortalSimulatorOptions>;
    /** KMS_PROVIDER for the worker (default vault-transit). */
    kms?: KmsProviderKind;
    /** AWS KMS: the suffix of the key alias (default: the task queue), to share a key with a webhook the test made first. */
    kmsKeySuffix?: string;
  } = {},
): Promise<BackupTestEnv> {
  installRuntime();
  const simulator = await startPortalSimulator({ seed: 7, ...options.simulator });
  const vaultUrl = new URL(inject('vaultAddr'));
  const vaultProxy = new TcpFaultProxy({ host: vaultUrl.hostname, port: Number(vaultUrl.port) }, await freePort());
  await vaultProxy.start();
  const kmsUrl = new URL(inject('kmsEndpoint'));
  const localKmsProxy = new TcpFaultProxy({ host: kmsUrl.hostname, port: Number(kmsUrl.port) }, await freePort());
  await localKmsProxy.start();
  const taskQueue = `test-${randomBytes(6).toString('hex')}`;
  const kmsProvider = options.kms ?? 'vault-transit';
  const kms = await kmsForTest(kmsProvider, { vaultPort: vaultProxy.port, kmsPort: localKmsProxy.port, keySuffix: options.kmsKeySuffix ?? taskQueue });
  const workerEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS: options.temporalAddress ?? (options.cluster ? clusterAddress() : inject('temporalAddress')),
    TEMPORAL_TASK_QUEUE: taskQueue,
    PAYLOAD_CODEC_KEYS: inject('codecKeys'),
    SHARE_SEALING_KEYS: inject('sealingKeys'),
    PORTAL_ENCLAVE_URL: simulator.url,
    PORTAL_API_URL: simulator.url,
    PORTAL_TIMEOUT_MS: String(options.portalTimeoutMs ?? 3_000),
    VAULT_ADDR: `http://127.0.0.1:${vaultProxy.port}`,
    VAULT_TOKEN: inject('vaultToken'),
    VAULT_TIMEOUT_MS: '2000',
    ...kms.env,
    CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
    SIGNING_SHARES_URL: `${simulator.url}/backend/users/{userId}/signing-shares`,
    WORKER_WORKFLOW_BUNDLE: inject('workflowBundlePath'),
    WORKER_SHUTDOWN_GRACE_MS: '2000',
    // Unversioned unless a test deploys versions itself (test/e2e/worker-deploy.test.ts).
    TEMPORAL_WORKER_VERSIONING: 'off',
    // Recoveries need two of these operators' approvals (test/support/operators.ts).
    RECOVERY_APPROVERS: TEST_APPROVERS,
    // Operators' signatures are checked on Vault directly, so a test's KMS outage (the proxy) leaves approvals alone.
    OPERATOR_VAULT_ADDR: inject('vaultAddr'),
    ...options.workerEnv,
  };
  const config = loadWorkerConfig(workerEnv);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })) });
  const rawClient = new Client({ connection });
  const workers: (() => Promise<void>)[] = [];
  const children: ManagedProcess[] = [];
  let userCounter = 0;

  const env: BackupTestEnv = {
    simulator,
    backups: new BackupClient(client, taskQueue),
    rawClient,
    vaultProxy,
    kmsProvider,
    kmsProxy: kmsProvider === 'aws-kms' ? localKmsProxy : vaultProxy,
    kms: kms.admin,
    vault: { addr: inject('vaultAddr'), token: inject('vaultToken') },
    taskQueue,
    workerEnv,
    seedUser(prefix = 'user') {
      userCounter += 1;
      const userId = `${prefix}-${userCounter}-${randomBytes(3).toString('hex')}`;
      simulator.state.seedUser(userId);
      return userId;
    },
    async startWorker(extraEnv) {
      return (await env.startWorkerOnConnection(extraEnv)).stop;
    },
    async startWorkerOnConnection(extraEnv) {
      const workerConfig = extraEnv ? loadWorkerConfig({ ...workerEnv, ...extraEnv }) : config;
      const nativeConnection = await connectWorker(workerConfig);
      const database = await openDatabase(workerConfig);
      const worker = await createBackupWorker(workerConfig, nativeConnection, undefined, database);
      const running = worker.run();
      let stopping: Promise<void> | undefined;
      const stop = () => (stopping ??= stopOnce());
      const stopOnce = async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
        await nativeConnection.close();
        await database?.end();
      };
      workers.push(stop);
      return { nativeConnection, stop };
    },
    spawnWorker(name) {
      const child = spawnWorkerProcess(name, { env: workerEnv, logFile: join(inject('runDir'), `${taskQueue}-${name}.log`) });
      children.push(child);
      return child;
    },
    async close() {
      await Promise.all(children.map((child) => child.kill()));
      await Promise.all(workers.map((stop) => stop()));
      await connection.close();
      await vaultProxy.stop();
      await localKmsProxy.stop();
      await simulator.close();
    },
  };
  return env;
}

/** The shared Temporal cluster's frontend; a clear failure when the run was told to leave it out. */
export function clusterAddress(): string {
  const address = inject('clusterAddress');
  if (!address) throw new Error('this test needs the Temporal cluster, which MPC_TEST_CLUSTER=off left out of the test stack');
  return address;
}

/**
 * Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. A query
 * the server gave up on before a worker answered (DEADLINE_EXCEEDED: the worker is slow, as on a
 * loaded machine) is "not yet", like any other poll that found nothing; every other error fails.
 */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch((error: unknown) => {
      if (queryTimedOut(error)) return undefined;
      throw error;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** gRPC's DEADLINE_EXCEEDED status code. */
const GRPC_DEADLINE_EXCEEDED = 4;

function queryTimedOut(error: unknown): boolean {
  return error instanceof ServiceError && (error.cause as { code?: unknown } | undefined)?.code === GRPC_DEADLINE_EXCEEDED;
}

/** Waits until the user's backup is parked as NEEDS_ATTENTION and returns its status. */
export function waitUntilParked(backups: BackupClient, userId: string, timeoutMs = 60_000) {
  return eventually(
    `backup of ${userId} to park`,
    async () => {
      const status = await backups.getBackupStatus(userId);
      return status.status === 'NEEDS_ATTENTION' ? status : undefined;
    },
    timeoutMs,
  );
}
