import { join } from 'node:path';
import { freePortBelow32768 } from '../../stack/free-port';
import { startVaultDevServer } from '../../stack/vault-dev-server';
import { startSimulatorProcess } from '../bench-stack';
import { percentile } from '../percentile';
import { cpuSeconds, sampleRss } from '../process-stats';
import { windowed } from '../windowed';
import { callRestateBackup, restatePeerUri, startRestatePeer } from './restate-peer-process';
import { RESTATE_PEER } from './restate-backup';
import { startRestateServer, type RestateServer } from './restate-server';

/** Runs before the measured ones, left out of every figure (connections, caches, JIT). */
const WARMUP = 5;

const peakOf = (samples: { rssMiB: number }[]) => Math.max(0, ...samples.map((sample) => sample.rssMiB));

/**
 * The Restate peer measured as ours and the DBOS peer are: throughput at `concurrency` over
 * `users` fresh wallets (the client keeps `concurrency` calls open at the ingress), CPU per backup
 * of each process (the service, restate-server with its own storage, Vault, the simulator), peak
 * memory of the service and the server, and one-at-a-time latency as a client sees it (one call
 * to the ingress that returns the result: the server pushes it, nothing polls).
 */
export async function restatePeerRun(latencyMs: number, users: number, concurrency: number, latencyRuns: number, out: string) {
  const dir = join(out, `restate-peer-${latencyMs}ms`);
  const singles = latencyRuns + WARMUP;
  const { simulator, simulatorUrl } = await startSimulatorProcess(dir, { users: users + singles, latencyMs });
  const [vault, server] = await Promise.all([startVaultDevServer({ logFile: join(dir, 'vault.log') }), startRestateServer(dir)]);
  const servicePort = await freePortBelow32768();
  const setup = { portalUrl: simulatorUrl, vaultAddr: vault.addr, vaultToken: vault.rootToken, servicePort, attemptsFile: join(dir, 'step-attempts.log'), logFile: join(dir, 'peer.log') };
  const peer = await startRestatePeer(setup).catch(async (error: unknown) => {
    await Promise.all([server.stop(), vault.stop(), simulator.stop()]);
    throw error;
  });
  try {
    await server.registerDeployment(restatePeerUri(servicePort));
    const pids = { peer: peer.child.pid!, restate: server.process.child.pid!, vault: vault.process.child.pid!, simulator: simulator.child.pid! };
    const read = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
    const before = read();
    const rss = { peer: sampleRss(pids.peer), restate: sampleRss(pids.restate) };
    const run = await windowed(users, concurrency, async (i) => void (await callRestateBackup(server.ingressUrl, `user-${i + 1}`)));
    const after = read();
    const cpu = Object.fromEntries(Object.keys(pids).map((name) => [name, Math.round(((after[name]! - before[name]!) / users) * 1e5) / 1e5]));
    const singleIds = Array.from({ length: singles }, (_, i) => `user-${users + i + 1}`);
    const single = await oneAtATime(server.ingressUrl, singleIds);
    const recorded = await fromServer(server, singleIds.slice(WARMUP));
    return {
      server: server.version,
      latencyMs,
      users,
      concurrency,
      completed: run.latenciesMs.length,
      failures: run.failures,
      throughputPerSec: Math.round((run.latenciesMs.length / run.wallMs) * 10_000) / 10,
      p50Ms: percentile(run.latenciesMs, 50),
      p95Ms: percentile(run.latenciesMs, 95),
      cpuSecondsPerBackup: cpu,
      peerPeakRssMiB: peakOf(rss.peer.stop()),
      serverPeakRssMiB: peakOf(rss.restate.stop()),
      oneAtATime: { client: stats(single), workflow: stats(recorded.workflowMs) },
      /** Journal entries of one backup as the server keeps them: the input, each ctx.run's command and its completion (the clock read is one too), the output. */
      journalEntriesPerBackup: recorded.journalEntriesPerBackup,
    };
  } finally {
    await peer.stop();
    await Promise.all([server.stop(), vault.stop(), simulator.stop()]);
  }
}

const stats = (values: number[]) => ({ p50Ms: percentile(values, 50), p95Ms: percentile(values, 95), n: values.length });

/**
 * What the server recorded of the one-at-a-time backups: each invocation's created-to-completed
 * time (ms precision) and its journal's length, from its introspection tables.
 */
async function fromServer(server: RestateServer, userIds: string[]) {
  const keys = userIds.map((userId) => {
    if (!/^user-\d+$/.test(userId)) throw new Error(`unexpected user id in a query: ${userId}`);
    return `'${userId}'`;
  });
  const where = `target_service_name = '${RESTATE_PEER.workflowName}' AND target_service_key IN (${keys.join(', ')})`;
  const invocations = await server.query<{ id: string; created_at: string; completed_at: string }>(`SELECT id, created_at, completed_at FROM sys_invocation WHERE ${where}`);
  const ids = invocations.map((row) => `'${row.id}'`).join(', ');
  const [journal] = await server.query<{ entries: number }>(`SELECT COUNT(*) AS entries FROM sys_journal WHERE id IN (${ids})`);
  return {
    workflowMs: invocations.map((row) => Date.parse(row.completed_at) - Date.parse(row.created_at)),
    journalEntriesPerBackup: Math.round(((journal?.entries ?? 0) / Math.max(1, invocations.length)) * 10) / 10,
  };
}

/** One backup at a time: the client's call to its result. */
async function oneAtATime(ingressUrl: string, userIds: string[]): Promise<number[]> {
  const clientMs: number[] = [];
  for (const [i, userId] of userIds.entries()) {
    const t0 = performance.now();
    await callRestateBackup(ingressUrl, userId);
    if (i >= WARMUP) clientMs.push(Math.round(performance.now() - t0));
  }
  return clientMs;
}
