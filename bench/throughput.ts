import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runBaselineScript } from './baseline-script';
import { cpuOf, startStack, type ServerFlags, type Stack } from './bench-stack';
import { startDatabaseWrites } from './database-writes';
import { floorOnce, oursOnce, sleep, summary, workflowLatencies } from './measures';
import { percentile } from './percentile';
import { sampleRss } from './process-stats';
import { windowed } from './windowed';

/**
 * The baseline script against the batch workflow over the same users, simulator and Vault, then
 * ours and the floor driven the same way by the client. Fresh wallets for each: users 1..N for the
 * baseline, N+1..2N for the batch, 2N+1..3N for ours client-driven.
 */
export async function throughputRun(latencyMs: number, users: number, concurrency: number, out: string, flags: ServerFlags) {
  const dir = join(out, `throughput-${latencyMs}ms`);
  const stack = await startStack(dir, { users: users * 3, latencyMs, floor: true }, flags);
  try {
    const ids = (prefix: number) => Array.from({ length: users }, (_, i) => `user-${prefix + i + 1}`);
    const baseline = await baselinePart(stack, ids(0), concurrency);
    await sleep(1_000);
    const batch = await batchPart(stack, ids(users), concurrency);
    // Ours and the floor driven the same way (the client keeps `concurrency` in flight): the
    // comparison with Temporal's own floor on this server, worker settings and SDK.
    await sleep(1_000);
    const userIds = ids(users * 2);
    let cpu = cpuOf(stack);
    let writes = await databaseWrites(stack);
    const oursClient = await windowed(users, concurrency, async (i) => void (await oursOnce(stack, userIds[i]!)));
    const oursClientCpu = cpu.perBackup(users);
    const oursWrites = await writes?.perBackup(users);
    await sleep(1_000);
    cpu = cpuOf(stack, { floorWorker: stack.floorWorker!.child.pid! });
    writes = await databaseWrites(stack);
    const floorPrefix = randomBytes(3).toString('hex');
    const floor = await windowed(users, concurrency, async (i) => void (await floorOnce(stack, `floor-${floorPrefix}-${i}`)));
    const floorCpu = cpu.perBackup(users);
    const floorWrites = await writes?.perBackup(users);
    return {
      temporal: stack.temporal.info,
      latencyMs,
      users,
      concurrency,
      baseline: baseline.figures,
      ours: batch.figures,
      oursClientDriven: { ...summary(oursClient, oursClientCpu), ...(oursWrites ? { temporalDatabaseWritesPerBackup: oursWrites } : {}) },
      floor: { ...summary(floor, floorCpu), ...(floorWrites ? { temporalDatabaseWritesPerBackup: floorWrites } : {}) },
      ratio: Math.round((batch.throughput / baseline.throughput) * 100) / 100,
      /** (worker + Temporal) CPU per backup of ours (client-driven) over the floor's (floor worker + Temporal). */
      cpuOverFloor:
        Math.round(((oursClientCpu.worker! + oursClientCpu.temporal!) / Math.max(1e-9, floorCpu.floorWorker! + floorCpu.temporal!)) * 100) / 100,
    };
  } finally {
    await stack.stop();
  }
}

/** The cluster's PostgreSQL writes over a part (none on the dev server: SQLite inside its process). */
const databaseWrites = (stack: Stack) => (stack.temporal.databaseUrl ? startDatabaseWrites(stack.temporal.databaseUrl) : Promise.resolve(undefined));

/** The plain script over `userIds`; it runs inside this process, so its own CPU counts as its "worker". */
async function baselinePart(stack: Stack, userIds: string[], concurrency: number) {
  const cpu = cpuOf(stack);
  const driverCpu = process.cpuUsage();
  const baseline = await runBaselineScript(userIds, concurrency, {
    portalUrl: stack.simulatorUrl,
    vaultAddr: stack.vault.addr,
    vaultToken: stack.vault.rootToken,
    credentialsUrl: `${stack.simulatorUrl}/backend/users/{userId}/credentials`,
  });
  const driverUsed = process.cpuUsage(driverCpu);
  const users = userIds.length;
  const baselineCpu = { ...cpu.perBackup(users), worker: Math.round(((driverUsed.user + driverUsed.system) / 1e6 / users) * 1e5) / 1e5 };
  const throughput = (baseline.latenciesMs.length / baseline.wallMs) * 1000;
  return {
    throughput,
    figures: {
      completed: baseline.latenciesMs.length,
      failures: baseline.failures,
      throughputPerSec: Math.round(throughput * 10) / 10,
      p50Ms: percentile(baseline.latenciesMs, 50),
      p95Ms: percentile(baseline.latenciesMs, 95),
      cpuSecondsPerBackup: baselineCpu,
    },
  };
}

/** Ours as one batch over `userIds`, unpaced; latencies from visibility, and the worker's peak RSS. */
async function batchPart(stack: Stack, userIds: string[], concurrency: number) {
  const cpu = cpuOf(stack);
  const rss = sampleRss(stack.worker.child.pid!);
  const since = new Date();
  const t0 = Date.now();
  const { batchId } = await stack.batches.startBatch({ source: { kind: 'list', userIds }, concurrency, backupsPerMinute: 1e7 });
  const report = await stack.batches.wait(batchId);
  const wallMs = Date.now() - t0;
  const oursCpu = cpu.perBackup(userIds.length);
  const samples = rss.stop();
  const latencies = await workflowLatencies(stack.client, since);
  const throughput = (report.counts.completed / wallMs) * 1000;
  return {
    throughput,
    figures: {
      completed: report.counts.completed,
      failures: report.counts.failed + report.counts.parked,
      throughputPerSec: Math.round(throughput * 10) / 10,
      p50Ms: percentile(latencies, 50),
      p95Ms: percentile(latencies, 95),
      cpuSecondsPerBackup: oursCpu,
      workerPeakRssMiB: Math.max(0, ...samples.map((s) => s.rssMiB)),
    },
  };
}
