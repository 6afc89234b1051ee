import type { Client } from '@temporalio/client';
import { FLOOR_TASK_QUEUE, type Stack } from './bench-stack';
import { percentile } from './percentile';
import type { WindowedRun } from './windowed';

/** One backup of ours as a backend runs it: startBackupWorkflow (start, describe), then waitForBackup. */
export async function oursOnce(stack: Stack, userId: string) {
  const started = await stack.backups.startBackupWorkflow(userId);
  await stack.backups.waitForBackup(userId, started.runId);
  return started;
}

/** One floor workflow: start, then wait for its result. */
export async function floorOnce(stack: Stack, id: string) {
  const handle = await stack.plainClient.workflow.start('floorWorkflow', { taskQueue: FLOOR_TASK_QUEUE, workflowId: id, args: [{ userId: id }] });
  await handle.result();
  return handle;
}

const perSecond = (done: number, wallMs: number) => Math.round((done / wallMs) * 10_000) / 10;

/** A windowed run's figures, with the CPU per backup measured around it. */
export const summary = (run: WindowedRun, cpu: Record<string, number>) => ({
  completed: run.latenciesMs.length,
  failures: run.failures,
  throughputPerSec: perSecond(run.latenciesMs.length, run.wallMs),
  p50Ms: percentile(run.latenciesMs, 50),
  p95Ms: percentile(run.latenciesMs, 95),
  cpuSecondsPerBackup: cpu,
});

/** Per-backup latency of ours: each backupWallet run's start to close, from visibility. */
export async function workflowLatencies(client: Client, since: Date): Promise<number[]> {
  const latencies: number[] = [];
  const query = `WorkflowType = 'backupWallet' AND ExecutionStatus = 'Completed' AND StartTime >= '${since.toISOString()}'`;
  for await (const execution of client.workflow.list({ query })) {
    if (execution.closeTime) latencies.push(execution.closeTime.getTime() - execution.startTime.getTime());
  }
  return latencies;
}

export type History = Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;

/** Event time of a history's last event (the close), ms since the epoch. */
export function closeTimeMs(history: History): number {
  const last = history.events?.[history.events.length - 1]?.eventTime;
  return last ? Number(last.seconds ?? 0) * 1000 + (last.nanos ?? 0) / 1e6 : 0;
}

const round1 = (value: number) => Math.round(value * 10) / 10;
export const mean = (values: number[]) => round1(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
