import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Command } from 'commander';
import { BatchClient, defaultBackupsPerMinute } from '../client/batch-client';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { freePort } from '../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../stack/managed-process';
import { startTemporalDevServer, type TemporalDevServer } from '../stack/temporal-dev-server';
import { startVaultDevServer, type VaultDevServer } from '../stack/vault-dev-server';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import { runBaselineScript } from './baseline-script';
import { percentile } from './percentile';
import { cpuSeconds, sampleRss } from './process-stats';
import { summarizeCpuProfiles } from './cpu-profile';

/**
 * `npm run bench`: the baseline script against the batch workflow over the same users, simulator
 * and Vault; a rate-limited run; a 10,000-wallet scale run; a CPU profile of the worker.
 */
const program = new Command('bench')
  .option('--users <n>', 'users per throughput run', '2000')
  .option('--concurrency <n>', 'backups in flight, for both', '20')
  .option('--latencies <ms,…>', "simulator latency per Portal call ('' skips the throughput runs)", '0,50')
  .option('--rate-limited <n>', 'backups in the rate-limited run (0 to skip)', '300')
  .option('--rate-scale <k>', "the rate-limited run uses Portal's limits times k, to finish in minutes", '6')
  .option('--scale <n>', 'wallets in the scale run (0 to skip)', '10000')
  .option('--out <dir>', 'where to write results', 'bench-results')
  .parse();

const ROOT = join(__dirname, '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stack {
  temporal: TemporalDevServer;
  vault: VaultDevServer;
  simulator: ManagedProcess;
  simulatorUrl: string;
  worker: ManagedProcess;
  client: Client;
  batches: BatchClient;
  stop(): Promise<void>;
}

async function startStack(dir: string, options: { users: number; latencyMs: number; rpm?: { enclave: number; client: number }; profile?: boolean }): Promise<Stack> {
  mkdirSync(dir, { recursive: true });
  const [temporal, vault] = await Promise.all([
    startTemporalDevServer({ logFile: join(dir, 'temporal.log') }),
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
  const worker = spawnWorkerProcess('worker', {
    logFile: join(dir, 'worker.log'),
    ...(options.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'cpu-profile')}`] } : {}),
    env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_TASK_QUEUE: 'bench',
        PAYLOAD_CODEC_KEYS: codecKeys,
        SHARE_SEALING_KEYS: `bench-seal-1:${randomBytes(32).toString('base64')}`,
        PORTAL_ENCLAVE_URL: simulatorUrl,
        PORTAL_API_URL: simulatorUrl,
        VAULT_ADDR: vault.addr,
        VAULT_TOKEN: vault.rootToken,
        CREDENTIALS_URL: `${simulatorUrl}/backend/users/{userId}/credentials`,
        WORKER_WORKFLOW_BUNDLE: bundlePath,
        WORKER_SHUTDOWN_GRACE_MS: '5000',
        WORKER_MAX_CONCURRENT_ACTIVITIES: '200',
        LOG_LEVEL: 'warn',
    },
  });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })) });
  await waitForPollers(connection, 'bench', worker.exited);
  return {
    temporal,
    vault,
    simulator,
    simulatorUrl,
    worker,
    client,
    batches: new BatchClient(client, 'bench'),
    async stop() {
      await worker.stop(15_000);
      await connection.close();
      await Promise.all([simulator.stop(), temporal.stop(), vault.stop()]);
    },
  };
}

function cpuOf(stack: Stack) {
  const pids = {
    worker: stack.worker.child.pid!,
    temporal: stack.temporal.process.child.pid!,
    vault: stack.vault.process.child.pid!,
    simulator: stack.simulator.child.pid!,
  };
  const read = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)])) as Record<keyof typeof pids, number>;
  const before = read();
  return {
    perBackup(count: number) {
      const after = read();
      return Object.fromEntries(
        Object.keys(pids).map((name) => [name, Math.round(((after[name as keyof typeof pids] - before[name as keyof typeof pids]) / count) * 1e5) / 1e5]),
      );
    },
  };
}

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
  const stack = await startStack(dir, { users: users * 2, latencyMs });
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
      ratio: Math.round((oursThroughput / baselineThroughput) * 100) / 100,
    };
  } finally {
    await stack.stop();
  }
}

async function rateLimitedRun(count: number, scale: number, out: string) {
  const rpm = { enclave: 50 * scale, client: 200 * scale };
  const rate = defaultBackupsPerMinute({ enclavePerMinute: rpm.enclave, clientPerMinute: rpm.client });
  const stack = await startStack(join(out, 'rate-limited'), { users: count, latencyMs: 20, rpm });
  try {
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
    const idealMs = (count / rate) * 60_000;
    return {
      backups: count,
      limitsPerMinute: rpm,
      backupsPerMinute: rate,
      completed: report.counts.completed,
      wallSeconds: Math.round(wallMs / 100) / 10,
      idealSeconds: Math.round(idealMs / 100) / 10,
      overIdealPercent: Math.round(((wallMs - idealMs) / idealMs) * 1000) / 10,
      rateLimited429s: calls.rateLimited ?? 0,
    };
  } finally {
    await stack.stop();
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
  const results: Record<string, unknown> = { machine: { cores: (await import('node:os')).cpus().length, node: process.version }, startedAt: new Date().toISOString() };
  const throughput = [];
  for (const latency of o.latencies!.split(',').filter((value) => value.trim() !== '').map(Number)) {
    process.stdout.write(`throughput run, simulator latency ${latency} ms…\n`);
    throughput.push(await throughputRun(latency, Number(o.users), Number(o.concurrency), out));
  }
  results.throughput = throughput;
  if (Number(o.rateLimited) > 0) {
    process.stdout.write('rate-limited run…\n');
    results.rateLimited = await rateLimitedRun(Number(o.rateLimited), Number(o.rateScale), out);
  }
  if (Number(o.scale) > 0) {
    process.stdout.write(`scale run, ${o.scale} wallets…\n`);
    results.scale = await scaleRun(Number(o.scale), out);
  }
  writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
  process.stdout.write(`${renderTable(results)}\nresults: ${join(out, 'results.json')}\n`);
}

function renderTable(results: Record<string, unknown>): string {
  const rows = ['| latency | who | backups/s | p50 ms | p95 ms | CPU s/backup (worker, temporal, vault, simulator) | worker peak RSS MiB | ours/baseline |', '|---|---|---|---|---|---|---|---|'];
  for (const run of results.throughput as Awaited<ReturnType<typeof throughputRun>>[]) {
    const cpu = (c: Record<string, number>) => ['worker', 'temporal', 'vault', 'simulator'].map((k) => c[k]?.toFixed(4) ?? '-').join(', ');
    rows.push(`| ${run.latencyMs} ms | baseline | ${run.baseline.throughputPerSec} | ${run.baseline.p50Ms} | ${run.baseline.p95Ms} | ${cpu(run.baseline.cpuSecondsPerBackup)} | – | |`);
    rows.push(`| ${run.latencyMs} ms | ours | ${run.ours.throughputPerSec} | ${run.ours.p50Ms} | ${run.ours.p95Ms} | ${cpu(run.ours.cpuSecondsPerBackup)} | ${run.ours.workerPeakRssMiB} | ${run.ratio} |`);
  }
  const lines = [rows.join('\n')];
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
