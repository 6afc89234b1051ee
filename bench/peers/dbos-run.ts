import { join } from 'node:path';
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import { startPostgresServer } from '../../stack/postgres-server';
import { startVaultDevServer } from '../../stack/vault-dev-server';
import { startSimulatorProcess } from '../bench-stack';
import { startDatabaseWrites } from '../database-writes';
import { percentile } from '../percentile';
import { cpuSeconds, sampleRss, treeCpuSeconds } from '../process-stats';
import { windowed } from '../windowed';
import { connectDbosPeerClient, dbosPeerSchema, enqueueDbosBackup, startDbosPeer } from './dbos-peer-process';

/** Runs before the measured ones, left out of every figure (connections, caches, JIT). */
const WARMUP = 5;

/**
 * How often a client in another process looks for a result in PostgreSQL (DBOS's default is
 * 1 s, which would be most of a backup's latency): one at a time 20 ms, under load 50 ms, whose
 * queries count in PostgreSQL's CPU. Ours is told of the result by the server (a long poll).
 */
const RESULT_POLL_MS = { single: 20, load: 50 } as const;

/**
 * The DBOS peer measured as ours is: throughput at `concurrency` over `users` fresh wallets, CPU
 * per backup of each process (the peer, PostgreSQL with its backends, Vault, the simulator), the
 * peer's peak memory, and one-at-a-time latency — as a client in another process sees it
 * (enqueue, then the result through PostgreSQL) and as the workflow's own start-to-end time.
 */
export async function dbosPeerRun(latencyMs: number, users: number, concurrency: number, latencyRuns: number, out: string) {
  const dir = join(out, `dbos-peer-${latencyMs}ms`);
  const singles = latencyRuns + WARMUP;
  const { simulator, simulatorUrl } = await startSimulatorProcess(dir, { users: users + singles, latencyMs });
  const [vault, postgres] = await Promise.all([startVaultDevServer({ logFile: join(dir, 'vault.log') }), startPostgresServer({ logFile: join(dir, 'postgres.log') })]);
  const schema = dbosPeerSchema();
  const setup = { portalUrl: simulatorUrl, vaultAddr: vault.addr, vaultToken: vault.rootToken, databaseUrl: postgres.url, schema, concurrency, logFile: join(dir, 'peer.log') };
  const peer = await startDbosPeer(setup);
  const client = await connectDbosPeerClient(setup);
  try {
    const pids = { peer: peer.child.pid!, vault: vault.process.child.pid!, simulator: simulator.child.pid! };
    const read = () => ({ ...Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)])), postgres: treeCpuSeconds(postgres.pid!) });
    const before = read();
    const writes = await startDatabaseWrites(postgres.url);
    const rss = sampleRss(pids.peer);
    const run = await windowed(users, concurrency, async (i) => void (await (await enqueueDbosBackup(client, `user-${i + 1}`)).getResult({ pollingIntervalMs: RESULT_POLL_MS.load })));
    const after = read();
    const databaseWritesPerBackup = await writes.perBackup(users);
    const peakRss = Math.max(0, ...rss.stop().map((sample) => sample.rssMiB));
    const cpu = Object.fromEntries(Object.keys(after).map((name) => [name, Math.round(((after[name as keyof typeof after] - before[name as keyof typeof before]) / users) * 1e5) / 1e5]));
    const single = await oneAtATime(client, Array.from({ length: singles }, (_, i) => `user-${users + i + 1}`));
    const stats = (values: number[]) => ({ p50Ms: percentile(values, 50), p95Ms: percentile(values, 95), n: values.length });
    return {
      latencyMs,
      users,
      concurrency,
      completed: run.latenciesMs.length,
      failures: run.failures,
      throughputPerSec: Math.round((run.latenciesMs.length / run.wallMs) * 10_000) / 10,
      p50Ms: percentile(run.latenciesMs, 50),
      p95Ms: percentile(run.latenciesMs, 95),
      cpuSecondsPerBackup: cpu,
      /** PostgreSQL's commits, rows and WAL per backup, the result polls of the client included. */
      databaseWritesPerBackup,
      peerPeakRssMiB: peakRss,
      oneAtATime: { client: stats(single.client), workflow: stats(single.workflow) },
    };
  } finally {
    await client.destroy();
    await peer.stop();
    await Promise.all([postgres.stop(), vault.stop(), simulator.stop()]);
  }
}

/** One backup at a time: the client's enqueue-to-result, and the workflow's own created-to-updated time from its status. */
async function oneAtATime(client: DBOSClient, userIds: string[]) {
  const clientMs: number[] = [];
  const workflowMs: number[] = [];
  for (const [i, userId] of userIds.entries()) {
    const t0 = performance.now();
    const handle = await enqueueDbosBackup(client, userId);
    await handle.getResult({ pollingIntervalMs: RESULT_POLL_MS.single });
    const elapsed = performance.now() - t0;
    const status = await client.getWorkflow(handle.workflowID);
    if (i < WARMUP) continue;
    clientMs.push(Math.round(elapsed));
    if (status?.createdAt !== undefined && status.updatedAt !== undefined) workflowMs.push(status.updatedAt - status.createdAt);
  }
  return { client: clientMs, workflow: workflowMs };
}
