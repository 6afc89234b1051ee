import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { BackupClient } from '../client/backup-client';
import { backupDataConverter } from '../codec/data-converter';
import { recoveryWorkflowId } from '../domain/user-id';
import { loadWorkerConfig } from '../worker/config';
import { connectWorker, createBackupWorker, HEARTBEAT_INTERVAL_MS } from '../worker/create-worker';
import { runBaselineScript } from './baseline-script';
import { averageActions, countBillableActions } from './billable-actions';
import { startStack, type ServerFlags, type Stack } from './bench-stack';
import { historyGaps, meanGaps } from './gaps';
import { closeTimeMs, floorOnce, mean, type History } from './measures';
import { percentile } from './percentile';

/** Runs before the measured ones, left out of every figure (connections, caches, JIT). */
const WARMUP = 5;

/** Ours, one at a time: the latency, the client's own calls, and each run to read its history after. */
interface OursOneAtATime {
  latencies: number[];
  client: { start: number[]; describe: number[]; wait: number[]; resultAfterClose: number[]; startToFirstEvent: number[] };
  runs: { workflowId: string; runId: string; startedAtMs: number; doneAtMs: number }[];
}

/**
 * Single-backup latency, one at a time (what a backend that waits on a backup sees): the plain
 * script, ours (startBackupWorkflow + waitForBackup) and the floor; then, from the histories of
 * the measured runs, where ours spends its time, its history events and billable actions.
 */
export async function latencyRun(latencyMs: number, runs: number, out: string, flags: ServerFlags) {
  const n = runs + WARMUP;
  const stack = await startStack(join(out, `latency-${latencyMs}ms`), { users: n * 3, latencyMs, floor: true }, flags);
  try {
    const baselineRun = await runBaselineScript(
      Array.from({ length: n }, (_, i) => `user-${i + 1}`),
      1,
      { portalUrl: stack.simulatorUrl, vaultAddr: stack.vault.addr, vaultToken: stack.vault.rootToken, credentialsUrl: `${stack.simulatorUrl}/backend/users/{userId}/credentials` },
    );
    const baseline = baselineRun.latenciesMs.slice(WARMUP);
    const ours = await oursOneAtATime(stack, Array.from({ length: n }, (_, i) => `user-${n + i + 1}`));
    const eager = await eagerStartLatencies(stack, Array.from({ length: n }, (_, i) => `user-${2 * n + i + 1}`), WARMUP);
    const guard = await userRunGuardLatencies(stack);
    const floor = await floorOneAtATime(stack, n);

    const oursHistories = await Promise.all(ours.runs.map((run) => stack.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory()));
    const floorHistories = await Promise.all(floor.ids.map((id) => stack.plainClient.workflow.getHandle(id).fetchHistory()));
    addServerGaps(ours, oursHistories);
    const { client } = ours;
    const heartbeatModel = { intervalMs: HEARTBEAT_INTERVAL_MS, maxThrottleMs: HEARTBEAT_INTERVAL_MS };
    const stats = (values: number[]) => ({ p50Ms: percentile(values, 50), p95Ms: percentile(values, 95), n: values.length });
    return {
      temporal: stack.temporal.info,
      latencyMs,
      runs,
      baseline: stats(baseline),
      ours: stats(ours.latencies),
      oursEagerStart: { ...stats(eager.latencies), eagerlyStarted: eager.eagerlyStarted },
      floor: stats(floor.latencies),
      oursOverBaselineP50Ms: percentile(ours.latencies, 50) - percentile(baseline, 50),
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

/** Ours one at a time over `userIds` (the first WARMUP not measured), with the client's start and describe calls timed apart. */
async function oursOneAtATime(stack: Stack, userIds: string[]): Promise<OursOneAtATime> {
  const result: OursOneAtATime = { latencies: [], client: { start: [], describe: [], wait: [], resultAfterClose: [], startToFirstEvent: [] }, runs: [] };
  const { client } = result;
  for (const [i, userId] of userIds.entries()) {
    const startsBefore = stack.clientTimings.start.length;
    const describesBefore = stack.clientTimings.describe.length;
    const startedAtMs = Date.now();
    const t0 = performance.now();
    const started = await stack.backups.startBackupWorkflow(userId);
    const t1 = performance.now();
    await stack.backups.waitForBackup(userId, started.runId);
    const t2 = performance.now();
    if (i < WARMUP) continue;
    result.latencies.push(t2 - t0);
    client.start.push(stack.clientTimings.start.slice(startsBefore).reduce((a, b) => a + b, 0));
    client.describe.push(stack.clientTimings.describe.slice(describesBefore).reduce((a, b) => a + b, 0));
    client.wait.push(t2 - t1);
    result.runs.push({ workflowId: started.workflowId, runId: started.runId, startedAtMs, doneAtMs: startedAtMs + (t2 - t0) });
  }
  return result;
}

/** From each run's history: the start call to the first event, and the close to the result reaching the client. */
function addServerGaps(ours: OursOneAtATime, histories: History[]): void {
  ours.runs.forEach((run, i) => {
    const history = histories[i]!;
    const first = history.events?.[0]?.eventTime;
    const firstMs = first ? Number(first.seconds ?? 0) * 1000 + (first.nanos ?? 0) / 1e6 : run.startedAtMs;
    ours.client.startToFirstEvent.push(firstMs - run.startedAtMs);
    ours.client.resultAfterClose.push(run.doneAtMs - closeTimeMs(history));
  });
}

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

/** What the user-run guard adds to step 1: a describe of recover-<userId>, which is not found. */
async function userRunGuardLatencies(stack: Stack): Promise<number[]> {
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
  return guard;
}

/** The floor one at a time: the latencies and ids of the measured runs. */
async function floorOneAtATime(stack: Stack, n: number): Promise<{ latencies: number[]; ids: string[] }> {
  const latencies: number[] = [];
  const ids: string[] = [];
  const prefix = randomBytes(3).toString('hex');
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await floorOnce(stack, `floor-${prefix}-${i}`);
    if (i >= WARMUP) {
      latencies.push(performance.now() - t0);
      ids.push(`floor-${prefix}-${i}`);
    }
  }
  return { latencies, ids };
}
