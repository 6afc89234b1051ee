import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, type ServerFlags } from './bench-stack';
import { summarizeCpuProfiles } from './cpu-profile';
import { sampleRss } from './process-stats';

/** One batch over `count` wallets from the backend's paged list: throughput, history sizes and the worker's memory over the run. */
export async function scaleRun(count: number, out: string, flags: ServerFlags) {
  const dir = join(out, 'scale');
  // A CPU profile of a very long run is too large to be useful; the 10,000-wallet run keeps one.
  const stack = await startStack(dir, { users: count, latencyMs: 0, profile: count <= 20_000 }, flags);
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
    writeProfileSummary(join(dir, 'cpu-profile'), out);
  }
}

/**
 * node --cpu-prof writes one profile per thread: the main thread (activities, SDK) and the threads
 * that run workflow code. Summarizes this run's (the newest pid's) together into <out>/profile.json.
 */
function writeProfileSummary(profileDir: string, out: string): void {
  try {
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
