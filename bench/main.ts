import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection, WorkflowNotFoundError, type WorkflowClientInterceptor } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { Command } from 'commander';
import { BackupClient } from '../client/backup-client';
import { BatchClient, defaultBackupsPerMinute } from '../client/batch-client';
import { recoveryWorkflowId } from '../domain/user-id';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { freePort } from '../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../stack/managed-process';
import { startTemporalDevServer, type TemporalDevServer } from '../stack/temporal-dev-server';
import { startVaultDevServer, type VaultDevServer } from '../stack/vault-dev-server';
import { startPostgresServer } from '../stack/postgres-server';
import { loadWorkerConfig } from '../worker/config';
import { connectWorker, createBackupWorker, HEARTBEAT_INTERVAL_MS } from '../worker/create-worker';
import { fixedWindowFor } from '../adapters/portal/portal-rate-limiter';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import { runBaselineScript } from './baseline-script';
import { percentile } from './percentile';
import { cpuSeconds, sampleRss } from './process-stats';
import { summarizeCpuProfiles } from './cpu-profile';
import { averageActions, countBillableActions } from './billable-actions';
import { historyGaps, meanGaps } from './gaps';

/**
 * `npm run bench`: the baseline script against the batch workflow over the same users, simulator
 * and Vault, and both against the floor (a bare workflow of four no-op activities on the same
 * server and worker settings); single-backup latency one at a time, with where the time goes,
 * history events and billable actions per backup; a rate-limited run with several worker
 * processes and Portal faults; a 10,000-wallet scale run; a CPU profile of the worker.
 * `--only latency` (or throughput, rate-limited, scale; comma-separated) runs parts alone.
 */
const PARTS = ['throughput', 'latency', 'rate-limited', 'scale'] as const;
const program = new Command('bench')
  .option('--users <n>', 'users per throughput run', '2000')
  .option('--concurrency <n>', 'backups in flight, for both', '20')
  .option('--latencies <ms,…>', "simulator latency per Portal call ('' skips the throughput runs)", '0,50')
  .option('--rate-limited <n>', 'backups in the rate-limited run (0 to skip)', '300')
  .option('--rate-scale <k>', "the rate-limited run uses Portal's limits times k, to finish in minutes", '6')
  .option('--scale <n>', 'wallets in the scale run (0 to skip)', '10000')
  .option('--out <dir>', 'where to write results', 'bench-results')
  .option('--only <parts>', `run only these parts (${PARTS.join(', ')})`, PARTS.join(','))
  .option('--latency-runs <n>', 'backups one at a time per variant in the latency part (at least 50 for p95)', '50')
  .option('--latency-portal-ms <ms,…>', 'simulator latencies of the latency part', '0,50')
  .option('--eager-activities <on|off>', "the dev server's eager activity execution (system.enableActivityEagerExecution)", 'on')
  .option('--dynamic-config <key=value,…>', "more dev-server dynamic config, values as JSON (e.g. matching.numTaskqueueReadPartitions=1)", '')
  .option('--rate-workers <n>', 'worker processes in the rate-limited run', '4')
  .option('--rate-pace <factors>', 'the rate-limited runs start backups at these multiples of the default batch rate (above 1: faster than Portal allows, the shared limit must hold)', '1,1.5')
  .option('--rate-fault-percent <p>', 'share of Portal requests that fail (5xx, HTML page, lost response, truncated body) in the rate-limited run', '5')
  .parse();

const ROOT = join(__dirname, '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stack {
  temporal: TemporalDevServer;
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
  clientTimings: { start: number[]; describe: number[] };
  /** The worker processes' environment (for an in-process worker of the same configuration). */
  workerEnv: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

interface StackOptions {
  users: number;
  latencyMs: number;
  rpm?: { enclave: number; client: number };
  profile?: boolean;
  workers?: number;
  floor?: boolean;
  /** More worker configuration (e.g. the Portal rate limits). */
  workerEnv?: Record<string, string>;
}

const FLOOR_TASK_QUEUE = 'bench-floor';
const WORKER_SETTINGS = { WORKER_MAX_CONCURRENT_ACTIVITIES: '200', WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '40' };

async function startStack(dir: string, options: StackOptions): Promise<Stack> {
  mkdirSync(dir, { recursive: true });
  const flags = program.opts<{ eagerActivities: string; dynamicConfig: string }>();
  const dynamicConfig = Object.fromEntries(
    flags.dynamicConfig
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')).trim(), JSON.parse(pair.slice(pair.indexOf('=') + 1)) as string | number | boolean]),
  );
  const [temporal, vault] = await Promise.all([
    startTemporalDevServer({ logFile: join(dir, 'temporal.log'), eagerActivityExecution: flags.eagerActivities !== 'off', dynamicConfig }),
    startVaultDevServer({ logFile: join(dir, 'vault.log') }),
  ]);
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
  const bundlePath = await writeWorkflowBundle(join(dir, 'workflow-bundle.js'));
  const codecKeys = `bench-1:${randomBytes(32).toString('base64')}`;
  const workerEnv: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_TASK_QUEUE: 'bench',
        // One build, never a second deployed beside it: unversioned (docs/changing-workflows.md).
        TEMPORAL_WORKER_VERSIONING: 'off',
        PAYLOAD_CODEC_KEYS: codecKeys,
        SHARE_SEALING_KEYS: `bench-seal-1:${randomBytes(32).toString('base64')}`,
        PORTAL_ENCLAVE_URL: simulatorUrl,
        PORTAL_API_URL: simulatorUrl,
        VAULT_ADDR: vault.addr,
        VAULT_TOKEN: vault.rootToken,
        CREDENTIALS_URL: `${simulatorUrl}/backend/users/{userId}/credentials`,
        WORKER_WORKFLOW_BUNDLE: bundlePath,
        WORKER_SHUTDOWN_GRACE_MS: '5000',
        ...WORKER_SETTINGS,
        LOG_LEVEL: 'warn',
        ...options.workerEnv,
  };
  const workers = Array.from({ length: options.workers ?? 1 }, (_, i) =>
    spawnWorkerProcess(i === 0 ? 'worker' : `worker-${i + 1}`, {
      logFile: join(dir, i === 0 ? 'worker.log' : `worker-${i + 1}.log`),
      ...(options.profile && i === 0 ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'cpu-profile')}`] } : {}),
      env: workerEnv,
    }),
  );
  const worker = workers[0]!;
  let floorWorker: ManagedProcess | undefined;
  if (options.floor) {
    const floorBundle = join(dir, 'floor-bundle.js');
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(__dirname, 'floor-workflow.ts'),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
    });
    writeFileSync(floorBundle, code);
    floorWorker = startProcess('floor-worker', process.execPath, ['--import', 'tsx', join(__dirname, 'floor-worker.ts')], {
      logFile: join(dir, 'floor-worker.log'),
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TEMPORAL_ADDRESS: temporal.address, FLOOR_TASK_QUEUE, FLOOR_WORKFLOW_BUNDLE: floorBundle, ...WORKER_SETTINGS },
    });
  }
  const clientTimings = { start: [] as number[], describe: [] as number[] };
  const timing: WorkflowClientInterceptor = {
    async start(input, next) {
      const t0 = performance.now();
      try {
        return await next(input);
      } finally {
        clientTimings.start.push(performance.now() - t0);
      }
    },
    async startWithDetails(input, next) {
      const t0 = performance.now();
      try {
        return await next(input);
      } finally {
        clientTimings.start.push(performance.now() - t0);
      }
    },
    async describe(input, next) {
      const t0 = performance.now();
      try {
        return await next(input);
      } finally {
        clientTimings.describe.push(performance.now() - t0);
      }
    },
  };
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({
    connection,
    dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })),
    interceptors: { workflow: [timing] },
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

/** CPU seconds per backup of each named process between now and perBackup(count). */
function cpuOf(stack: Stack, extra: Record<string, number> = {}) {
  const pids: Record<string, number> = {
    worker: stack.worker.child.pid!,
    temporal: stack.temporal.process.child.pid!,
    vault: stack.vault.process.child.pid!,
    simulator: stack.simulator.child.pid!,
    ...Object.fromEntries(stack.workers.slice(1).map((w, i) => [`worker${i + 2}`, w.child.pid!])),
    ...extra,
  };
  const read = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const before = read();
  return {
    perBackup(count: number): Record<string, number> {
      const after = read();
      return Object.fromEntries(Object.keys(pids).map((name) => [name, Math.round(((after[name]! - before[name]!) / count) * 1e5) / 1e5]));
    },
  };
}

/** Runs `one` over `count` items, `concurrency` at a time; each one's latency (ms) and the wall time. */
async function windowed(count: number, concurrency: number, one: (i: number) => Promise<void>) {
  const latenciesMs: number[] = [];
  let failures = 0;
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        try {
          await one(i);
          latenciesMs.push(performance.now() - t0);
        } catch {
          failures += 1;
        }
      }
    }),
  );
  return { latenciesMs, failures, wallMs: Date.now() - started };
}

/** One backup of ours as a backend runs it: startBackupWorkflow (start, describe), then waitForBackup. */
async function oursOnce(stack: Stack, userId: string) {
  const started = await stack.backups.startBackupWorkflow(userId);
  await stack.backups.waitForBackup(userId, started.runId);
  return started;
}

/** One floor workflow: start, then wait for its result. */
async function floorOnce(stack: Stack, id: string) {
  const handle = await stack.plainClient.workflow.start('floorWorkflow', { taskQueue: FLOOR_TASK_QUEUE, workflowId: id, args: [{ userId: id }] });
  await handle.result();
  return handle;
}

const perSecond = (done: number, wallMs: number) => Math.round((done / wallMs) * 10_000) / 10;
const summary = (run: { latenciesMs: number[]; failures: number; wallMs: number }, cpu: Record<string, number>) => ({
  completed: run.latenciesMs.length,
  failures: run.failures,
  throughputPerSec: perSecond(run.latenciesMs.length, run.wallMs),
  p50Ms: percentile(run.latenciesMs, 50),
  p95Ms: percentile(run.latenciesMs, 95),
  cpuSecondsPerBackup: cpu,
});

/** Per-backup latency of ours: each backupWallet run's start to close, from visibility. */
async function workflowLatencies(client: Client, since: Date): Promise<number[]> {
  const latencies: number[] = [];
  const query = `WorkflowType = 'backupWallet' AND ExecutionStatus = 'Completed' AND StartTime >= '${since.toISOString()}'`;
  for await (const execution of client.workflow.list({ query })) {
    if (execution.closeTime) latencies.push(execution.closeTime.getTime() - execution.startTime.getTime());
  }
  return latencies;
}

async function throughputRun(latencyMs: number, users: number, concurrency: number, out: string) {
  const dir = join(out, `throughput-${latencyMs}ms`);
  const stack = await startStack(dir, { users: users * 3, latencyMs, floor: true });
  try {
    const ids = (prefix: number) => Array.from({ length: users }, (_, i) => `user-${prefix + i + 1}`);
    // Baseline first, over users 1..N; ours over users N+1..2N (fresh wallets for both).
    let cpu = cpuOf(stack);
    const driverCpu = process.cpuUsage();
    const baseline = await runBaselineScript(ids(0), concurrency, {
      portalUrl: stack.simulatorUrl,
      vaultAddr: stack.vault.addr,
      vaultToken: stack.vault.rootToken,
      credentialsUrl: `${stack.simulatorUrl}/backend/users/{userId}/credentials`,
    });
    const driverUsed = process.cpuUsage(driverCpu);
    // The baseline script runs inside this process: its own CPU counts as its "worker".
    const baselineCpu = { ...cpu.perBackup(users), worker: Math.round(((driverUsed.user + driverUsed.system) / 1e6 / users) * 1e5) / 1e5 };
    await sleep(1_000);
    cpu = cpuOf(stack);
    const rss = sampleRss(stack.worker.child.pid!);
    const since = new Date();
    const t0 = Date.now();
    const { batchId } = await stack.batches.startBatch({ source: { kind: 'list', userIds: ids(users) }, concurrency, backupsPerMinute: 1e7 });
    const report = await stack.batches.wait(batchId);
    const oursWall = Date.now() - t0;
    const oursCpu = cpu.perBackup(users);
    const samples = rss.stop();
    const latencies = await workflowLatencies(stack.client, since);
    const baselineThroughput = (baseline.latenciesMs.length / baseline.wallMs) * 1000;
    const oursThroughput = (report.counts.completed / oursWall) * 1000;
    // Ours and the floor driven the same way (the client keeps `concurrency` in flight): the
    // comparison with Temporal's own floor on this server, worker settings and SDK.
    await sleep(1_000);
    const userIds = ids(users * 2);
    cpu = cpuOf(stack);
    const oursClient = await windowed(users, concurrency, async (i) => void (await oursOnce(stack, userIds[i]!)));
    const oursClientCpu = cpu.perBackup(users);
    await sleep(1_000);
    cpu = cpuOf(stack, { floorWorker: stack.floorWorker!.child.pid! });
    const floorPrefix = randomBytes(3).toString('hex');
    const floor = await windowed(users, concurrency, async (i) => void (await floorOnce(stack, `floor-${floorPrefix}-${i}`)));
    const floorCpu = cpu.perBackup(users);
    return {
      latencyMs,
      users,
      concurrency,
      baseline: {
        completed: baseline.latenciesMs.length,
        failures: baseline.failures,
        throughputPerSec: Math.round(baselineThroughput * 10) / 10,
        p50Ms: percentile(baseline.latenciesMs, 50),
        p95Ms: percentile(baseline.latenciesMs, 95),
        cpuSecondsPerBackup: baselineCpu,
      },
      ours: {
        completed: report.counts.completed,
        failures: report.counts.failed + report.counts.parked,
        throughputPerSec: Math.round(oursThroughput * 10) / 10,
        p50Ms: percentile(latencies, 50),
        p95Ms: percentile(latencies, 95),
        cpuSecondsPerBackup: oursCpu,
        workerPeakRssMiB: Math.max(0, ...samples.map((s) => s.rssMiB)),
      },
      oursClientDriven: summary(oursClient, oursClientCpu),
      floor: summary(floor, floorCpu),
      ratio: Math.round((oursThroughput / baselineThroughput) * 100) / 100,
      /** (worker + Temporal) CPU per backup of ours (client-driven) over the floor's (floor worker + Temporal). */
      cpuOverFloor:
        Math.round(((oursClientCpu.worker! + oursClientCpu.temporal!) / Math.max(1e-9, floorCpu.floorWorker! + floorCpu.temporal!)) * 100) / 100,
    };
  } finally {
    await stack.stop();
  }
}

/** Event time of a history's last event (the close), ms since the epoch. */
function closeTimeMs(history: Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>): number {
  const last = history.events?.[history.events.length - 1]?.eventTime;
  return last ? Number(last.seconds ?? 0) * 1000 + (last.nanos ?? 0) / 1e6 : 0;
}

const round1 = (value: number) => Math.round(value * 10) / 10;
const mean = (values: number[]) => round1(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length));

/**
 * Single-backup latency, one at a time (what a backend that waits on a backup sees): the plain
 * script, ours (startBackupWorkflow + waitForBackup) and the floor; then, from the histories of
 * the measured runs, where ours spends its time, its history events and billable actions.
 */
/**
 * Ours with eager workflow start, as a backend that runs a worker would: a worker of the same
 * configuration in this process, on a task queue of its own, and a client on its NativeConnection.
 */
async function eagerStartLatencies(stack: Stack, userIds: string[], warmup: number) {
  const taskQueue = 'bench-eager';
  const config = loadWorkerConfig({ ...stack.workerEnv, TEMPORAL_TASK_QUEUE: taskQueue });
  const connection = await connectWorker(config);
  const worker = await createBackupWorker(config, connection);
  const backups = new BackupClient(new Client({ connection, dataConverter: backupDataConverter(config.codecKeys) }), taskQueue, { eagerStart: true });
  const latencies: number[] = [];
  let eagerlyStarted = 0;
  try {
    await worker.runUntil(async () => {
      for (const [i, userId] of userIds.entries()) {
        const t0 = performance.now();
        const started = await backups.startBackupWorkflow(userId);
        await backups.waitForBackup(userId, started.runId);
        if (i < warmup) continue;
        latencies.push(performance.now() - t0);
        if (started.eagerlyStarted) eagerlyStarted += 1;
      }
    });
  } finally {
    await connection.close();
  }
  return { latencies, eagerlyStarted };
}

async function latencyRun(latencyMs: number, runs: number, out: string) {
  const warmup = 5;
  const n = runs + warmup;
  const stack = await startStack(join(out, `latency-${latencyMs}ms`), { users: n * 3, latencyMs, floor: true });
  try {
    const baselineRun = await runBaselineScript(
      Array.from({ length: n }, (_, i) => `user-${i + 1}`),
      1,
      { portalUrl: stack.simulatorUrl, vaultAddr: stack.vault.addr, vaultToken: stack.vault.rootToken, credentialsUrl: `${stack.simulatorUrl}/backend/users/{userId}/credentials` },
    );
    const baseline = baselineRun.latenciesMs.slice(warmup);

    const ours: number[] = [];
    const client = { start: [] as number[], describe: [] as number[], wait: [] as number[], resultAfterClose: [] as number[], startToFirstEvent: [] as number[] };
    const oursRuns: { workflowId: string; runId: string; startedAtMs: number; doneAtMs: number }[] = [];
    for (let i = 0; i < n; i++) {
      const userId = `user-${n + i + 1}`;
      const startsBefore = stack.clientTimings.start.length;
      const describesBefore = stack.clientTimings.describe.length;
      const startedAtMs = Date.now();
      const t0 = performance.now();
      const started = await stack.backups.startBackupWorkflow(userId);
      const t1 = performance.now();
      await stack.backups.waitForBackup(userId, started.runId);
      const t2 = performance.now();
      if (i < warmup) continue;
      ours.push(t2 - t0);
      client.start.push(stack.clientTimings.start.slice(startsBefore).reduce((a, b) => a + b, 0));
      client.describe.push(stack.clientTimings.describe.slice(describesBefore).reduce((a, b) => a + b, 0));
      client.wait.push(t2 - t1);
      oursRuns.push({ workflowId: started.workflowId, runId: started.runId, startedAtMs, doneAtMs: startedAtMs + (t2 - t0) });
    }

    const eager = await eagerStartLatencies(stack, Array.from({ length: n }, (_, i) => `user-${2 * n + i + 1}`), warmup);

    // What the user-run guard adds to step 1: a describe of recover-<userId>, which is not found.
    const guard: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      await stack.client.workflow
        .getHandle(recoveryWorkflowId(`user-absent-${i}`))
        .describe()
        .catch((error: unknown) => {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
        });
      if (i >= 5) guard.push(performance.now() - t0);
    }

    const floor: number[] = [];
    const floorIds: string[] = [];
    const prefix = randomBytes(3).toString('hex');
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await floorOnce(stack, `floor-${prefix}-${i}`);
      if (i >= warmup) {
        floor.push(performance.now() - t0);
        floorIds.push(`floor-${prefix}-${i}`);
      }
    }

    const oursHistories = await Promise.all(oursRuns.map((run) => stack.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory()));
    const floorHistories = await Promise.all(floorIds.map((id) => stack.plainClient.workflow.getHandle(id).fetchHistory()));
    oursRuns.forEach((run, i) => {
      const history = oursHistories[i]!;
      const first = history.events?.[0]?.eventTime;
      const firstMs = first ? Number(first.seconds ?? 0) * 1000 + (first.nanos ?? 0) / 1e6 : run.startedAtMs;
      client.startToFirstEvent.push(firstMs - run.startedAtMs);
      client.resultAfterClose.push(run.doneAtMs - closeTimeMs(history));
    });
    const heartbeatModel = { intervalMs: HEARTBEAT_INTERVAL_MS, maxThrottleMs: HEARTBEAT_INTERVAL_MS };
    const stats = (values: number[]) => ({ p50Ms: percentile(values, 50), p95Ms: percentile(values, 95), n: values.length });
    return {
      latencyMs,
      runs,
      baseline: stats(baseline),
      ours: stats(ours),
      oursEagerStart: { ...stats(eager.latencies), eagerlyStarted: eager.eagerlyStarted },
      floor: stats(floor),
      oursOverBaselineP50Ms: percentile(ours, 50) - percentile(baseline, 50),
      gapsMs: {
        clientStartCall: mean(client.start),
        clientDescribeAfterStart: mean(client.describe),
        startCallToStartEvent: mean(client.startToFirstEvent),
        waitForResult: mean(client.wait),
        resultReturnedAfterClose: mean(client.resultAfterClose),
        userRunGuardDescribeP50: percentile(guard, 50),
        ours: meanGaps(oursHistories.map(historyGaps)),
        floor: meanGaps(floorHistories.map(historyGaps)),
      },
      perBackup: {
        ours: averageActions(oursHistories.map((h) => countBillableActions(h, {}, heartbeatModel))),
        floor: averageActions(floorHistories.map((h) => countBillableActions(h, {}, heartbeatModel))),
      },
    };
  } finally {
    await stack.stop();
  }
}

/** Portal routes only (not the company backend's): the faults of the rate-limited run. */
const PORTAL_ROUTES = ['backup', 'storeCipherText', 'getCipherText', 'markPairs', 'getClient'] as const;
const PORTAL_FAULT_KINDS = [{ kind: 'status', status: 503 }, { kind: 'html-error', status: 502 }, { kind: 'lost-response' }, { kind: 'malformed' }] as const;

async function rateLimitedRun(count: number, scale: number, out: string, workers: number, faultPercent: number, pace: number) {
  const rpm = { enclave: 50 * scale, client: 200 * scale };
  const rate = Math.round(defaultBackupsPerMinute({ enclavePerMinute: rpm.enclave, clientPerMinute: rpm.client }) * pace);
  const dir = join(out, `rate-limited-pace-${pace}`);
  mkdirSync(dir, { recursive: true });
  // The shared limit lives in the company database: every worker process counts against one limit.
  const postgres = await startPostgresServer({ logFile: join(dir, 'postgres.log') });
  const stack = await startStack(dir, {
    users: count,
    latencyMs: 20,
    rpm,
    workers,
    // The workers' Portal limits are the simulator's (scaled) limits: the cap on what reaches Portal.
    workerEnv: {
      DATABASE_URL: postgres.url,
      PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: String(rpm.enclave),
      PORTAL_CLIENT_REQUESTS_PER_MINUTE: String(rpm.client),
    },
  }).catch(async (error: unknown) => {
    await postgres.stop();
    throw error;
  });
  try {
    if (faultPercent > 0) {
      // One request in 100/faultPercent fails, spread evenly over the kinds (never a 429: those must be the limiter's).
      const probability = faultPercent / 100 / PORTAL_FAULT_KINDS.length;
      for (const route of PORTAL_ROUTES) {
        for (const fault of PORTAL_FAULT_KINDS) {
          const response = await fetch(`${stack.simulatorUrl}/admin/faults`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ route, ...fault, probability }),
          });
          if (!response.ok) throw new Error(`adding a fault failed: ${response.status} ${await response.text()}`);
        }
      }
    }
    const t0 = Date.now();
    const { batchId } = await stack.batches.startBatch({
      // The backend's paged user list (the simulator serves its seeded users): a list source is
      // capped at MAX_LIST_USER_IDS, and a paged source is how a company re-backs-up everyone.
      source: { kind: 'http', url: `${stack.simulatorUrl}/backend/users` },
      concurrency: 20,
      backupsPerMinute: rate,
    });
    const report = await stack.batches.wait(batchId);
    const wallMs = Date.now() - t0;
    const calls = (await (await fetch(`${stack.simulatorUrl}/admin/calls`)).json()) as Record<string, number>;
    const faults = (await (await fetch(`${stack.simulatorUrl}/admin/faults`)).json()) as { fired: number };
    const idealMs = (count / rate) * 60_000;
    return {
      backups: count,
      workerProcesses: workers,
      pace,
      portalFaultPercent: faultPercent,
      // The simulator's fault log counts the 20 ms latency rule too (once per Portal call): the rest are the injected failures.
      portalFaultsInjected: Math.max(0, faults.fired - PORTAL_ROUTES.reduce((sum, route) => sum + (calls[route] ?? 0), 0)),
      portalCalls: Object.fromEntries(PORTAL_ROUTES.map((route) => [route, calls[route] ?? 0])),
      limitsPerMinute: rpm,
      backupsPerMinute: rate,
      completed: report.counts.completed,
      wallSeconds: Math.round(wallMs / 100) / 10,
      idealSeconds: Math.round(idealMs / 100) / 10,
      overIdealPercent: Math.round(((wallMs - idealMs) / idealMs) * 1000) / 10,
      rateLimited429s: calls.rateLimited ?? 0,
      // What the shared limit lets through per minute (fixed windows no sliding minute can overfill).
      limiterPerMinute: {
        enclave: (fixedWindowFor(rpm.enclave).points * 60) / fixedWindowFor(rpm.enclave).seconds,
        client: (fixedWindowFor(rpm.client).points * 60) / fixedWindowFor(rpm.client).seconds,
      },
      clientCallsPerMinute: Math.round((PORTAL_ROUTES.filter((r) => r !== 'backup').reduce((sum, r) => sum + (calls[r] ?? 0), 0) / wallMs) * 60_000),
      enclaveCallsPerMinute: Math.round(((calls.backup ?? 0) / wallMs) * 60_000),
    };
  } finally {
    await stack.stop();
    await postgres.stop();
  }
}

async function scaleRun(count: number, out: string) {
  const dir = join(out, 'scale');
  // A CPU profile of a very long run is too large to be useful; the 10,000-wallet run keeps one.
  const stack = await startStack(dir, { users: count, latencyMs: 0, profile: count <= 20_000 });
  try {
    const rss = sampleRss(stack.worker.child.pid!, 5_000);
    const t0 = Date.now();
    const { batchId, workflowId } = await stack.batches.startBatch({
      // The backend's paged user list (the simulator serves its seeded users): a list source is
      // capped at MAX_LIST_USER_IDS, and a paged source is how a company re-backs-up everyone.
      source: { kind: 'http', url: `${stack.simulatorUrl}/backend/users` },
      concurrency: 40,
      backupsPerMinute: 1e7,
    });
    const report = await stack.batches.wait(batchId);
    const wallMs = Date.now() - t0;
    const samples = rss.stop();
    const historyLengths: number[] = [];
    for await (const run of stack.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) historyLengths.push(run.historyLength);
    let childEvents = 0;
    for await (const run of stack.client.workflow.list({ query: `WorkflowType = 'backupWallet'`, pageSize: 1000 })) {
      childEvents = Math.max(childEvents, run.historyLength);
    }
    const third = Math.floor(samples.length / 3);
    const avg = (xs: { rssMiB: number }[]) => Math.round((xs.reduce((a, s) => a + s.rssMiB, 0) / Math.max(1, xs.length)) * 10) / 10;
    return {
      wallets: count,
      completed: report.counts.completed,
      wallSeconds: Math.round(wallMs / 100) / 10,
      throughputPerSec: Math.round((report.counts.completed / wallMs) * 10_000) / 10,
      batchRuns: historyLengths.length,
      batchHistoryEventsPerRunMax: Math.max(...historyLengths),
      backupWalletHistoryEventsMax: childEvents,
      workerRssMiB: { firstThirdAvg: avg(samples.slice(0, third)), lastThirdAvg: avg(samples.slice(-third)), max: Math.max(...samples.map((s) => s.rssMiB)) },
      rssSamples: samples,
    };
  } finally {
    await stack.stop();
    const profileDir = join(dir, 'cpu-profile');
    try {
      // node --cpu-prof writes one profile per thread: the main thread (activities, SDK) and the
      // threads that run workflow code. Summarize this run's (the newest pid's) together.
      const files = readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'));
      const pidOf = (name: string) => Number(name.split('.')[3]);
      const newest = Math.max(...files.map((name) => statSync(join(profileDir, name)).mtimeMs));
      const pid = pidOf(files.find((name) => statSync(join(profileDir, name)).mtimeMs === newest)!);
      const profiles = files.filter((name) => pidOf(name) === pid).map((name) => JSON.parse(readFileSync(join(profileDir, name), 'utf8')));
      writeFileSync(join(out, 'profile.json'), JSON.stringify(summarizeCpuProfiles(profiles), null, 2));
    } catch {
      // no profile written (the worker did not exit cleanly)
    }
  }
}

async function main(): Promise<void> {
  const o = program.opts<Record<string, string>>();
  const out = join(ROOT, o.out!);
  mkdirSync(out, { recursive: true });
  const only = new Set(o.only!.split(',').map((part) => part.trim()).filter(Boolean));
  const unknown = [...only].filter((part) => !(PARTS as readonly string[]).includes(part));
  if (unknown.length > 0) throw new Error(`--only: unknown part(s) ${unknown.join(', ')}; use ${PARTS.join(', ')}`);
  const results: Record<string, unknown> = {
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cores: (await import('node:os')).cpus().length, node: process.version },
    eagerActivityExecution: o.eagerActivities !== 'off',
    ...(o.dynamicConfig ? { dynamicConfig: o.dynamicConfig } : {}),
    startedAt: new Date().toISOString(),
  };
  const throughput = [];
  if (only.has('throughput')) {
    for (const latency of o.latencies!.split(',').filter((value) => value.trim() !== '').map(Number)) {
      process.stdout.write(`throughput run, simulator latency ${latency} ms…\n`);
      throughput.push(await throughputRun(latency, Number(o.users), Number(o.concurrency), out));
    }
  }
  results.throughput = throughput;
  if (only.has('latency')) {
    const latency = [];
    for (const portalMs of o.latencyPortalMs!.split(',').filter((value) => value.trim() !== '').map(Number)) {
      process.stdout.write(`single-backup latency, one at a time, simulator latency ${portalMs} ms…\n`);
      latency.push(await latencyRun(portalMs, Math.max(1, Number(o.latencyRuns)), out));
    }
    results.latency = latency;
  }
  if (only.has('rate-limited') && Number(o.rateLimited) > 0) {
    process.stdout.write('rate-limited run…\n');
    const runs: Awaited<ReturnType<typeof rateLimitedRun>>[] = [];
    results.rateLimited = runs;
    for (const pace of String(o.ratePace).split(',').map(Number)) {
      runs.push(await rateLimitedRun(Number(o.rateLimited), Number(o.rateScale), out, Number(o.rateWorkers), Number(o.rateFaultPercent), pace));
    }
  }
  if (only.has('scale') && Number(o.scale) > 0) {
    process.stdout.write(`scale run, ${o.scale} wallets…\n`);
    results.scale = await scaleRun(Number(o.scale), out);
  }
  writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
  process.stdout.write(`${renderTable(results)}\nresults: ${join(out, 'results.json')}\n`);
}

const throughput = (results: Record<string, unknown>) => (results.throughput as unknown[]).length > 0;

function renderTable(results: Record<string, unknown>): string {
  const rows = ['| latency | who | backups/s | p50 ms | p95 ms | CPU s/backup (worker, temporal, vault, simulator) | worker peak RSS MiB | ours/baseline |', '|---|---|---|---|---|---|---|---|'];
  for (const run of results.throughput as Awaited<ReturnType<typeof throughputRun>>[]) {
    const cpu = (c: Record<string, number>) => ['worker', 'temporal', 'vault', 'simulator'].map((k) => c[k]?.toFixed(4) ?? '-').join(', ');
    rows.push(`| ${run.latencyMs} ms | baseline | ${run.baseline.throughputPerSec} | ${run.baseline.p50Ms} | ${run.baseline.p95Ms} | ${cpu(run.baseline.cpuSecondsPerBackup)} | – | |`);
    rows.push(`| ${run.latencyMs} ms | ours (batch) | ${run.ours.throughputPerSec} | ${run.ours.p50Ms} | ${run.ours.p95Ms} | ${cpu(run.ours.cpuSecondsPerBackup)} | ${run.ours.workerPeakRssMiB} | ${run.ratio} |`);
    const c = run.oursClientDriven;
    rows.push(`| ${run.latencyMs} ms | ours (client) | ${c.throughputPerSec} | ${c.p50Ms} | ${c.p95Ms} | ${cpu(c.cpuSecondsPerBackup)} | – | |`);
    const f = run.floor;
    rows.push(`| ${run.latencyMs} ms | floor | ${f.throughputPerSec} | ${f.p50Ms} | ${f.p95Ms} | ${cpu({ ...f.cpuSecondsPerBackup, worker: f.cpuSecondsPerBackup.floorWorker! })} | – | (ours/floor CPU, worker+Temporal: ${run.cpuOverFloor}) |`);
  }
  const lines = throughput(results) ? [rows.join('\n')] : [];
  if (results.latency) {
    const l = ['| Portal latency | plain script p50/p95 ms | ours p50/p95 ms | ours, eager start p50/p95 ms | floor p50/p95 ms | ours − script p50 | events/backup ours, floor | billable actions/backup ours, floor |', '|---|---|---|---|---|---|---|---|'];
    for (const run of results.latency as Awaited<ReturnType<typeof latencyRun>>[]) {
      const pp = (x: { p50Ms: number; p95Ms: number }) => `${x.p50Ms} / ${x.p95Ms}`;
      l.push(
        `| ${run.latencyMs} ms | ${pp(run.baseline)} | ${pp(run.ours)} | ${pp(run.oursEagerStart)} (${run.oursEagerStart.eagerlyStarted} eager) | ${pp(run.floor)} | ${run.oursOverBaselineP50Ms} | ${run.perBackup.ours.historyEvents}, ${run.perBackup.floor.historyEvents} | ${run.perBackup.ours.total}, ${run.perBackup.floor.total} |`,
      );
    }
    lines.push(`single backup, one at a time:\n${l.join('\n')}`);
    for (const run of results.latency as Awaited<ReturnType<typeof latencyRun>>[]) {
      lines.push(`gaps at ${run.latencyMs} ms (mean ms per backup): ${JSON.stringify(run.gapsMs)}`);
      lines.push(`billable actions per backup at ${run.latencyMs} ms: ours ${JSON.stringify(run.perBackup.ours)}`);
    }
  }
  if (results.rateLimited) lines.push(`rate-limited: ${JSON.stringify(results.rateLimited)}`);
  if (results.scale) {
    const { rssSamples: _samples, ...scale } = results.scale as Record<string, unknown>;
    lines.push(`scale: ${JSON.stringify(scale)}`);
  }
  return lines.join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
