import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection, type WorkflowClientInterceptor } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { BackupClient } from '../client/backup-client';
import { BatchClient } from '../client/batch-client';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { freePort } from '../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../stack/managed-process';
import { startVaultDevServer, type VaultDevServer } from '../stack/vault-dev-server';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import { startBenchTemporal, type BenchTemporal, type ServerFlags } from './bench-temporal';
import { cpuSeconds } from './process-stats';

export type { ServerFlags } from './bench-temporal';

const ROOT = join(__dirname, '..');
export const FLOOR_TASK_QUEUE = 'bench-floor';
const WORKER_SETTINGS = { WORKER_MAX_CONCURRENT_ACTIVITIES: '200', WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '40' };

export interface Stack {
  /** The dev server or the cluster (`--temporal`), and what the report says of it. */
  temporal: BenchTemporal;
  vault: VaultDevServer;
  simulator: ManagedProcess;
  simulatorUrl: string;
  worker: ManagedProcess;
  workers: ManagedProcess[];
  /** The floor's own worker process (bench/floor-worker.ts), when asked for. */
  floorWorker?: ManagedProcess;
  client: Client;
  /** No codec, for the floor workflow. */
  plainClient: Client;
  backups: BackupClient;
  batches: BatchClient;
  /** Client-side time of each start and describe call (ms), for the latency part. */
  clientTimings: ClientTimings;
  /** The worker processes' environment (for an in-process worker of the same configuration). */
  workerEnv: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export interface StackOptions {
  users: number;
  latencyMs: number;
  rpm?: { enclave: number; client: number };
  profile?: boolean;
  workers?: number;
  floor?: boolean;
  /** More worker configuration (e.g. the Portal rate limits). */
  workerEnv?: Record<string, string>;
}

type ClientTimings = { start: number[]; describe: number[] };

/** Temporal, Vault, the simulator (a process), the workers (and the floor's), and clients: one bench run's world. */
export async function startStack(dir: string, options: StackOptions, flags: ServerFlags): Promise<Stack> {
  mkdirSync(dir, { recursive: true });
  const [temporal, vault] = await Promise.all([
    startBenchTemporal(dir, flags),
    startVaultDevServer({ logFile: join(dir, 'vault.log') }),
  ]);
  const { simulator, simulatorUrl } = await startSimulatorProcess(dir, options);
  const bundlePath = await writeWorkflowBundle(join(dir, 'workflow-bundle.js'));
  const codecKeys = `bench-1:${randomBytes(32).toString('base64')}`;
  const workerEnv = benchWorkerEnv({ temporal, vault, simulatorUrl, codecKeys, bundlePath, extra: options.workerEnv });
  const workers = Array.from({ length: options.workers ?? 1 }, (_, i) =>
    spawnWorkerProcess(i === 0 ? 'worker' : `worker-${i + 1}`, {
      logFile: join(dir, i === 0 ? 'worker.log' : `worker-${i + 1}.log`),
      ...(options.profile && i === 0 ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'cpu-profile')}`] } : {}),
      env: workerEnv,
    }),
  );
  const worker = workers[0]!;
  const floorWorker = options.floor ? await startFloorWorker(dir, temporal.address) : undefined;
  const clientTimings: ClientTimings = { start: [], describe: [] };
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({
    connection,
    dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })),
    interceptors: { workflow: [timingInterceptor(clientTimings)] },
  });
  const plainClient = new Client({ connection });
  await waitForPollers(connection, 'bench', worker.exited);
  if (floorWorker) await waitForPollers(connection, FLOOR_TASK_QUEUE, floorWorker.exited);
  return {
    temporal,
    vault,
    simulator,
    simulatorUrl,
    worker,
    workers,
    ...(floorWorker ? { floorWorker } : {}),
    client,
    plainClient,
    backups: new BackupClient(client, 'bench'),
    workerEnv,
    batches: new BatchClient(client, 'bench'),
    clientTimings,
    async stop() {
      await Promise.all([...workers.map((w) => w.stop(15_000)), floorWorker?.stop(15_000)]);
      await connection.close();
      await Promise.all([simulator.stop(), temporal.stop(), vault.stop()]);
    },
  };
}

/** The simulator as a process of its own (its CPU is measured apart), seeded with the run's users. */
export async function startSimulatorProcess(dir: string, options: Pick<StackOptions, 'users' | 'latencyMs' | 'rpm'>): Promise<{ simulator: ManagedProcess; simulatorUrl: string }> {
  const simPort = await freePort();
  const simulatorUrl = `http://127.0.0.1:${simPort}`;
  const simulator = startProcess(
    'simulator',
    process.execPath,
    [
      '--import', 'tsx', join(ROOT, 'simulator', 'main.ts'),
      '--port', String(simPort), '--users', String(options.users), '--latency-ms', String(options.latencyMs),
      ...(options.rpm ? ['--enclave-rpm', String(options.rpm.enclave), '--client-rpm', String(options.rpm.client)] : []),
    ],
    { logFile: join(dir, 'simulator.log'), cwd: ROOT },
  );
  await waitUntil('simulator', async () => (await fetch(`${simulatorUrl}/health`)).ok, 60_000, simulator.exited);
  return { simulator, simulatorUrl };
}

function benchWorkerEnv(stack: {
  temporal: BenchTemporal;
  vault: VaultDevServer;
  simulatorUrl: string;
  codecKeys: string;
  bundlePath: string;
  extra: Record<string, string> | undefined;
}): NodeJS.ProcessEnv {
  const { simulatorUrl } = stack;
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS: stack.temporal.address,
    TEMPORAL_TASK_QUEUE: 'bench',
    // One build, never a second deployed beside it: unversioned (docs/changing-workflows.md).
    TEMPORAL_WORKER_VERSIONING: 'off',
    PAYLOAD_CODEC_KEYS: stack.codecKeys,
    SHARE_SEALING_KEYS: `bench-seal-1:${randomBytes(32).toString('base64')}`,
    PORTAL_ENCLAVE_URL: simulatorUrl,
    PORTAL_API_URL: simulatorUrl,
    VAULT_ADDR: stack.vault.addr,
    VAULT_TOKEN: stack.vault.rootToken,
    CREDENTIALS_URL: `${simulatorUrl}/backend/users/{userId}/credentials`,
    WORKER_WORKFLOW_BUNDLE: stack.bundlePath,
    WORKER_SHUTDOWN_GRACE_MS: '5000',
    ...WORKER_SETTINGS,
    LOG_LEVEL: 'warn',
    ...stack.extra,
  };
}

/** The floor: a bare workflow of four no-op activities, on a worker process of its own with the same settings. */
async function startFloorWorker(dir: string, temporalAddress: string): Promise<ManagedProcess> {
  const floorBundle = join(dir, 'floor-bundle.js');
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(__dirname, 'floor-workflow.ts'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
  });
  writeFileSync(floorBundle, code);
  return startProcess('floor-worker', process.execPath, ['--import', 'tsx', join(__dirname, 'floor-worker.ts')], {
    logFile: join(dir, 'floor-worker.log'),
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TEMPORAL_ADDRESS: temporalAddress, FLOOR_TASK_QUEUE, FLOOR_WORKFLOW_BUNDLE: floorBundle, ...WORKER_SETTINGS },
  });
}

/** Times the client's start and describe calls (what a backend pays before the workflow runs). */
function timingInterceptor(timings: ClientTimings): WorkflowClientInterceptor {
  const timed = async <T>(into: number[], call: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await call();
    } finally {
      into.push(performance.now() - t0);
    }
  };
  return {
    start: (input, next) => timed(timings.start, () => next(input)),
    startWithDetails: (input, next) => timed(timings.start, () => next(input)),
    describe: (input, next) => timed(timings.describe, () => next(input)),
  };
}

/** CPU seconds per backup of each named process between now and perBackup(count); `temporal` is the dev server, or a cluster's services and PostgreSQL in all. */
export function cpuOf(stack: Stack, extra: Record<string, number> = {}) {
  const pids: Record<string, number> = {
    worker: stack.worker.child.pid!,
    vault: stack.vault.process.child.pid!,
    simulator: stack.simulator.child.pid!,
    ...Object.fromEntries(stack.workers.slice(1).map((w, i) => [`worker${i + 2}`, w.child.pid!])),
    ...extra,
  };
  const readers: Record<string, () => number> = {
    ...Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, () => cpuSeconds(pid)])),
    ...stack.temporal.cpuReaders,
  };
  const read = () => Object.fromEntries(Object.entries(readers).map(([name, reader]) => [name, reader()]));
  const before = read();
  return {
    perBackup(count: number): Record<string, number> {
      const after = read();
      return Object.fromEntries(Object.keys(readers).map((name) => [name, Math.round(((after[name]! - before[name]!) / count) * 1e5) / 1e5]));
    },
  };
}
