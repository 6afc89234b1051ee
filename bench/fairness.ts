import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CALLS_PER_BACKUP, defaultBackupsPerMinute } from '../client/batch-client';
import { INTERACTIVE_RESERVE_SHARE } from '../adapters/portal/portal-rate-limiter';
import { BATCH_PRIORITY_KEY, INTERACTIVE_PRIORITY_KEY } from '../contracts/run-priority';
import type { ServerFlags, Stack } from './bench-stack';
import { percentile } from './percentile';
import { armPortalFaults, limiterPerMinute, PORTAL_ROUTES, startLimitedStack } from './rate-limited';

export interface FairnessOptions {
  /** Backups in the batch (a list source: at most 1,000). */
  batch: number;
  /** Single backups measured in each phase (idle, then during the batch). */
  singles: number;
  /** The singles' steady rate, as a share of Portal's limit in backups per minute (0.1: 10 %). */
  singleShare: number;
  /** Portal's limits times `scale`, to finish in minutes. */
  scale: number;
  workers: number;
  faultPercent: number;
}

/** Singles started before each phase's measured ones, left out (connections, caches, JIT). */
const WARMUP = 3;
/** How long the batch runs before the measured singles start (its pace has settled by then). */
const BATCH_HEAD_START_MS = 10_000;

/**
 * Fairness under a batch (issue 20, docs/performance.md): single backups started at a steady rate
 * on an idle system, then the same singles while a batch runs at its default pace (75 % of Portal's
 * scaled limits) through the shared limit of several worker processes with Portal faults. Reports
 * the singles' latency p50/p95 in both phases, the 429s Portal answered (must be 0), and the batch's
 * wall time against its plan. Faults are on in both phases: only the batch differs.
 */
export async function fairnessRun(out: string, run: FairnessOptions, flags: ServerFlags) {
  const { batch, singles, workers, faultPercent } = run;
  if (batch > 1_000) throw new Error('--fairness-batch: at most 1000 (a list source)');
  const rpm = { enclave: 50 * run.scale, client: 200 * run.scale };
  const batchRate = defaultBackupsPerMinute({ enclavePerMinute: rpm.enclave, clientPerMinute: rpm.client });
  // Portal's limit in backups per minute (the tighter route group), and the singles' share of it.
  const limitBackupsPerMinute = Math.min(rpm.enclave / CALLS_PER_BACKUP.enclave, rpm.client / CALLS_PER_BACKUP.client);
  const singlesPerMinute = limitBackupsPerMinute * run.singleShare;
  const intervalMs = 60_000 / singlesPerMinute;
  const singlesSpanMs = BATCH_HEAD_START_MS + (singles + WARMUP) * intervalMs;
  const plannedBatchMs = (batch / batchRate) * 60_000;
  if (singlesSpanMs > plannedBatchMs) {
    throw new Error(
      `--fairness-singles ${singles}: the singles would still be starting ${Math.round((singlesSpanMs - plannedBatchMs) / 1000)} s after the batch's planned end ` +
        `(one every ${Math.round(intervalMs)} ms); use fewer singles or a larger --fairness-batch`,
    );
  }
  const dir = join(out, 'fairness');
  mkdirSync(dir, { recursive: true });
  const users = batch + 2 * (singles + WARMUP);
  const { postgres, stack } = await startLimitedStack(dir, { users, rpm, workers }, flags);
  const uptimeAtStart = uptime();
  try {
    if (faultPercent > 0) await armPortalFaults(stack.simulatorUrl, faultPercent);
    // users: batch user-1 … user-<batch>, then the idle phase's singles, then the busy phase's.
    const singleIds = (phase: number) => Array.from({ length: singles + WARMUP }, (_, i) => `user-${batch + phase * (singles + WARMUP) + i + 1}`);
    process.stdout.write(`  idle: ${singles} singles, one every ${Math.round(intervalMs)} ms…\n`);
    const idle = await singlesAtRate(stack, singleIds(0), intervalMs);
    const before = await simulatorCounts(stack);
    process.stdout.write(`  batch of ${batch} at ${batchRate}/min, ${workers} workers, ${faultPercent} % Portal faults; singles after ${BATCH_HEAD_START_MS / 1000} s…\n`);
    const t0 = Date.now();
    const { batchId } = await stack.batches.startBatch({
      source: { kind: 'list', userIds: Array.from({ length: batch }, (_, i) => `user-${i + 1}`) },
      concurrency: 20,
      backupsPerMinute: batchRate,
    });
    const report = stack.batches.wait(batchId);
    await new Promise((resolve) => setTimeout(resolve, BATCH_HEAD_START_MS));
    const busy = await singlesAtRate(stack, singleIds(1), intervalMs);
    const singlesDoneAtSeconds = Math.round((Date.now() - t0) / 100) / 10;
    const done = await report;
    const wallMs = Date.now() - t0;
    const after = await simulatorCounts(stack);
    const stats = (values: number[]) => ({ p50Ms: percentile(values, 50), p95Ms: percentile(values, 95), maxMs: percentile(values, 100), n: values.length });
    const idleStats = stats(idle);
    const busyStats = stats(busy);
    return {
      temporalInfo: stack.temporal.info,
      workerProcesses: workers,
      portalFaultPercent: faultPercent,
      limitsPerMinute: rpm,
      limiterPerMinute: limiterPerMinute(rpm),
      interactiveReserveShare: INTERACTIVE_RESERVE_SHARE,
      priorityKeys: { interactive: INTERACTIVE_PRIORITY_KEY, batch: BATCH_PRIORITY_KEY },
      singles: { perPhase: singles, warmup: WARMUP, perMinute: Math.round(singlesPerMinute * 10) / 10, shareOfPortalLimit: run.singleShare },
      idle: idleStats,
      duringBatch: busyStats,
      p95DuringOverIdle: idleStats.p95Ms > 0 ? Math.round((busyStats.p95Ms / idleStats.p95Ms) * 100) / 100 : null,
      p50DuringOverIdle: idleStats.p50Ms > 0 ? Math.round((busyStats.p50Ms / idleStats.p50Ms) * 100) / 100 : null,
      batch: {
        backups: batch,
        backupsPerMinute: batchRate,
        completed: done.counts.completed,
        failed: done.counts.failed,
        wallSeconds: Math.round(wallMs / 100) / 10,
        plannedSeconds: Math.round(plannedBatchMs / 100) / 10,
        overPlannedPercent: Math.round(((wallMs - plannedBatchMs) / plannedBatchMs) * 1000) / 10,
        singlesDoneAtSeconds,
      },
      rateLimited429s: after.rateLimited,
      rateLimited429sDuringBatch: after.rateLimited - before.rateLimited,
      portalCallsDuringBatch: Object.fromEntries(PORTAL_ROUTES.map((route) => [route, (after.calls[route] ?? 0) - (before.calls[route] ?? 0)])),
      uptime: { atStart: uptimeAtStart, atEnd: uptime() },
      loadAverage: loadavg(),
    };
  } finally {
    await stack.stop();
    await postgres.stop();
  }
}

/**
 * Starts a single backup (startBackupWorkflow, as the backend does) every `intervalMs`, whether or
 * not the earlier ones are done, and waits for each: the latencies, start to result, of all but the
 * first WARMUP.
 */
async function singlesAtRate(stack: Stack, userIds: string[], intervalMs: number): Promise<number[]> {
  const t0 = Date.now();
  const latencies = await Promise.all(
    userIds.map(async (userId, i) => {
      const due = t0 + i * intervalMs;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      const startedAt = performance.now();
      const started = await stack.backups.startBackupWorkflow(userId);
      await stack.backups.waitForBackup(userId, started.runId);
      return performance.now() - startedAt;
    }),
  );
  return latencies.slice(WARMUP);
}

async function simulatorCounts(stack: Stack): Promise<{ calls: Record<string, number>; rateLimited: number }> {
  const calls = (await (await fetch(`${stack.simulatorUrl}/admin/calls`)).json()) as Record<string, number>;
  return { calls, rateLimited: calls.rateLimited ?? 0 };
}

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}
