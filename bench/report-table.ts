import type { fairnessRun } from './fairness';
import type { latencyRun } from './latency';
import type { throughputRun } from './throughput';
import type { dbosPeerRun } from './peers/dbos-run';
import type { restatePeerRun } from './peers/restate-run';
import { temporalLabel, type TemporalInfo } from './bench-temporal';

const hasThroughput = (results: Record<string, unknown>) => ((results.throughput as unknown[] | undefined) ?? []).length > 0;

/** The results as Markdown tables (throughput, latency) and JSON lines (rate-limited, scale), for the terminal and the docs. */
export function renderTable(results: Record<string, unknown>): string {
  const rows = ['| Temporal | latency | who | backups/s | p50 ms | p95 ms | CPU s/backup (worker, temporal, vault, simulator) | worker peak RSS MiB | ours/baseline |', '|---|---|---|---|---|---|---|---|---|'];
  for (const run of results.throughput as Awaited<ReturnType<typeof throughputRun>>[]) {
    const on = kindOf(run.temporal);
    const cpu = (c: Record<string, number>) => ['worker', 'temporal', 'vault', 'simulator'].map((k) => c[k]?.toFixed(4) ?? '-').join(', ');
    rows.push(`| ${on} | ${run.latencyMs} ms | baseline | ${run.baseline.throughputPerSec} | ${run.baseline.p50Ms} | ${run.baseline.p95Ms} | ${cpu(run.baseline.cpuSecondsPerBackup)} | – | |`);
    rows.push(`| ${on} | ${run.latencyMs} ms | ours (batch) | ${run.ours.throughputPerSec} | ${run.ours.p50Ms} | ${run.ours.p95Ms} | ${cpu(run.ours.cpuSecondsPerBackup)} | ${run.ours.workerPeakRssMiB} | ${run.ratio} |`);
    const c = run.oursClientDriven;
    rows.push(`| ${on} | ${run.latencyMs} ms | ours (client) | ${c.throughputPerSec} | ${c.p50Ms} | ${c.p95Ms} | ${cpu(c.cpuSecondsPerBackup)} | – | |`);
    const f = run.floor;
    rows.push(`| ${on} | ${run.latencyMs} ms | floor | ${f.throughputPerSec} | ${f.p50Ms} | ${f.p95Ms} | ${cpu({ ...f.cpuSecondsPerBackup, worker: f.cpuSecondsPerBackup.floorWorker! })} | – | (ours/floor CPU, worker+Temporal: ${run.cpuOverFloor}) |`);
  }
  const lines = hasThroughput(results) ? [rows.join('\n')] : [];
  if (results.latency) {
    const l = ['| Temporal | Portal latency | plain script p50/p95 ms | ours p50/p95 ms | ours, eager start p50/p95 ms | floor p50/p95 ms | ours − script p50 | events/backup ours, floor | billable actions/backup ours, floor |', '|---|---|---|---|---|---|---|---|---|'];
    for (const run of results.latency as Awaited<ReturnType<typeof latencyRun>>[]) {
      const pp = (x: { p50Ms: number; p95Ms: number }) => `${x.p50Ms} / ${x.p95Ms}`;
      l.push(
        `| ${kindOf(run.temporal)} | ${run.latencyMs} ms | ${pp(run.baseline)} | ${pp(run.ours)} | ${pp(run.oursEagerStart)} (${run.oursEagerStart.eagerlyStarted} eager) | ${pp(run.floor)} | ${run.oursOverBaselineP50Ms} | ${run.perBackup.ours.historyEvents}, ${run.perBackup.floor.historyEvents} | ${run.perBackup.ours.total}, ${run.perBackup.floor.total} |`,
      );
    }
    lines.push(`single backup, one at a time:\n${l.join('\n')}`);
    for (const run of results.latency as Awaited<ReturnType<typeof latencyRun>>[]) {
      lines.push(`gaps on ${kindOf(run.temporal)} at ${run.latencyMs} ms (mean ms per backup): ${JSON.stringify(run.gapsMs)}`);
      lines.push(`billable actions per backup on ${kindOf(run.temporal)} at ${run.latencyMs} ms: ours ${JSON.stringify(run.perBackup.ours)}`);
    }
  }
  const peers = (results.peers ?? { dbos: [], restate: [] }) as { dbos: Awaited<ReturnType<typeof dbosPeerRun>>[]; restate?: Awaited<ReturnType<typeof restatePeerRun>>[] };
  const peerRows = [...peers.dbos.map((run) => dbosRow(run)), ...(peers.restate ?? []).map((run) => restateRow(run))];
  if (peerRows.length > 0) {
    const first = peers.dbos[0] ?? peers.restate![0]!;
    const header = ['| Portal latency | who | backups/s | p50 ms | p95 ms | CPU s/backup (peer, engine, vault, simulator) | peer peak RSS MiB | one at a time p50/p95 ms (client; workflow) |', '|---|---|---|---|---|---|---|---|'];
    lines.push(`peers (concurrency ${first.concurrency}, ${first.users} backups each; engine: DBOS's PostgreSQL, restate-server):\n${[...header, ...peerRows].join('\n')}`);
  }
  const ranOn = temporalsOf(results);
  if (ranOn.length > 0) lines.unshift(`Temporal: ${ranOn.map(temporalLabel).join('; ')}`);
  if (results.rateLimited) lines.push(`rate-limited: ${JSON.stringify(results.rateLimited)}`);
  if (results.fairness) {
    const f = ['| Temporal | singles/min | idle p50 / p95 ms | during batch p50 / p95 ms | p95 during/idle | 429s | batch wall / planned s | over plan | batch completed |', '|---|---|---|---|---|---|---|---|---|'];
    for (const run of results.fairness as ({ temporal: string } & Awaited<ReturnType<typeof fairnessRun>>)[]) {
      const b = run.batch;
      f.push(
        `| ${run.temporal} | ${run.singles.perMinute} | ${run.idle.p50Ms} / ${run.idle.p95Ms} | ${run.duringBatch.p50Ms} / ${run.duringBatch.p95Ms} | ${run.p95DuringOverIdle} | ${run.rateLimited429s} | ${b.wallSeconds} / ${b.plannedSeconds} | ${b.overPlannedPercent} % | ${b.completed} of ${b.backups} |`,
      );
    }
    lines.push(`fairness under a batch (${JSON.stringify((results.fairness as { workerProcesses: number; portalFaultPercent: number }[]).map((r) => `${r.workerProcesses} workers, ${r.portalFaultPercent} % Portal faults`)[0])}):\n${f.join('\n')}`);
  }
  for (const run of [results.scale ?? []].flat() as Record<string, unknown>[]) {
    const { rssSamples: _samples, ...scale } = run;
    lines.push(`scale: ${JSON.stringify(scale)}`);
  }
  const sideBySide = renderSideBySide(results);
  if (sideBySide) lines.push(sideBySide);
  return lines.join('\n');
}

const kindOf = (info: TemporalInfo) => info.kind;

/** Each distinct Temporal the throughput and latency runs ran on. */
function temporalsOf(results: Record<string, unknown>): TemporalInfo[] {
  const runs = [...((results.throughput as { temporal: TemporalInfo }[] | undefined) ?? []), ...((results.latency as { temporal: TemporalInfo }[] | undefined) ?? [])];
  const byKind = new Map(runs.map((run) => [run.temporal.kind, run.temporal]));
  return [...byKind.values()];
}

const peerCpu = (cpu: Record<string, number>, engine: string) => ['peer', engine, 'vault', 'simulator'].map((k) => cpu[k]?.toFixed(4) ?? '-').join(', ');

function dbosRow(run: Awaited<ReturnType<typeof dbosPeerRun>>): string {
  const one = run.oneAtATime;
  return `| ${run.latencyMs} ms | DBOS | ${run.throughputPerSec} | ${run.p50Ms} | ${run.p95Ms} | ${peerCpu(run.cpuSecondsPerBackup, 'postgres')} | ${run.peerPeakRssMiB} | ${one.client.p50Ms} / ${one.client.p95Ms}; ${one.workflow.p50Ms} / ${one.workflow.p95Ms} |`;
}

function restateRow(run: Awaited<ReturnType<typeof restatePeerRun>>): string {
  const one = run.oneAtATime;
  return `| ${run.latencyMs} ms | Restate | ${run.throughputPerSec} | ${run.p50Ms} | ${run.p95Ms} | ${peerCpu(run.cpuSecondsPerBackup, 'restate')} | ${run.peerPeakRssMiB} (server ${run.serverPeakRssMiB}) | ${one.client.p50Ms} / ${one.client.p95Ms}; ${one.workflow.p50Ms} / ${one.workflow.p95Ms} |`;
}

type ThroughputRun = Awaited<ReturnType<typeof throughputRun>>;
type LatencyRun = Awaited<ReturnType<typeof latencyRun>>;
type Cpu = Record<string, number | undefined>;

/** CPU ms per backup of what runs the backups (engine, its database, the worker or peer process); Vault and the simulator apart. */
const engineMs = (cpu: Cpu, parts: string[]) => (parts.reduce((sum, part) => sum + (cpu[part] ?? 0), 0) * 1000).toFixed(1);
const sideMs = (cpu: Cpu) => `${((cpu.vault ?? 0) * 1000).toFixed(1)} / ${((cpu.simulator ?? 0) * 1000).toFixed(1)}`;
const pair = (x: { p50Ms: number; p95Ms: number } | undefined) => (x ? `${x.p50Ms} / ${x.p95Ms}` : '–');
/** What the engine made durable per backup: history events, journal entries, PostgreSQL commits / rows written / WAL. */
const durable = (parts: { events?: number; journal?: number; writes?: { commits: number; rowsWritten: number; walKiB: number } }) =>
  [
    parts.events !== undefined ? `${parts.events} events` : undefined,
    parts.journal !== undefined ? `${parts.journal} journal entries` : undefined,
    parts.writes ? `PostgreSQL ${parts.writes.commits} commits, ${parts.writes.rowsWritten} rows, ${parts.writes.walKiB} KiB WAL` : undefined,
  ]
    .filter(Boolean)
    .join('; ') || '–';

/**
 * Issue 20's one table: at each Portal latency, the plain script, the peers, ours and Temporal's
 * floor on each Temporal that ran, side by side — backups/s with `concurrency` in flight, CPU per
 * backup, peak memory, and one-at-a-time latency. Built from the same results as the tables above
 * (a part that did not run leaves its rows out).
 */
export function renderSideBySide(results: Record<string, unknown>): string {
  const throughput = (results.throughput as ThroughputRun[] | undefined) ?? [];
  const latency = (results.latency as LatencyRun[] | undefined) ?? [];
  const peers = (results.peers ?? { dbos: [], restate: [] }) as { dbos: Awaited<ReturnType<typeof dbosPeerRun>>[]; restate?: Awaited<ReturnType<typeof restatePeerRun>>[] };
  const latencies = [...new Set([...throughput.map((r) => r.latencyMs), ...peers.dbos.map((r) => r.latencyMs), ...(peers.restate ?? []).map((r) => r.latencyMs)])].sort((a, b) => a - b);
  if (latencies.length === 0) return '';
  const rows = [
    '| Portal latency | who | backups/s | CPU ms per backup (engine + its database + worker) | Vault / simulator CPU ms | peak RSS MiB | one at a time p50 / p95 ms | made durable per backup |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const ms of latencies) {
    const runs = throughput.filter((r) => r.latencyMs === ms);
    const single = (kind: string) => latency.find((r) => r.latencyMs === ms && r.temporal.kind === kind);
    const script = runs[0]?.baseline;
    if (script) rows.push(`| ${ms} ms | plain script (no durability) | ${script.throughputPerSec} | ${engineMs(script.cpuSecondsPerBackup, ['worker'])} | ${sideMs(script.cpuSecondsPerBackup)} | – | ${pair(latency.find((r) => r.latencyMs === ms)?.baseline)} | nothing |`);
    for (const run of peers.dbos.filter((r) => r.latencyMs === ms)) {
      rows.push(`| ${ms} ms | DBOS (PostgreSQL) | ${run.throughputPerSec} | ${engineMs(run.cpuSecondsPerBackup, ['peer', 'postgres'])} | ${sideMs(run.cpuSecondsPerBackup)} | ${run.peerPeakRssMiB} | ${pair(run.oneAtATime.client)} | ${durable({ writes: run.databaseWritesPerBackup })} |`);
    }
    for (const run of (peers.restate ?? []).filter((r) => r.latencyMs === ms)) {
      rows.push(`| ${ms} ms | Restate (restate-server) | ${run.throughputPerSec} | ${engineMs(run.cpuSecondsPerBackup, ['peer', 'restate'])} | ${sideMs(run.cpuSecondsPerBackup)} | ${run.peerPeakRssMiB} + server ${run.serverPeakRssMiB} | ${pair(run.oneAtATime.client)} | ${durable({ journal: run.journalEntriesPerBackup })} |`);
    }
    for (const run of runs) {
      const kind = run.temporal.kind;
      const c = run.oursClientDriven;
      const events = single(kind)?.perBackup;
      rows.push(
        `| ${ms} ms | ours, Temporal ${kind} | ${c.throughputPerSec} | ${engineMs(c.cpuSecondsPerBackup, ['worker', 'temporal'])} | ${sideMs(c.cpuSecondsPerBackup)} | ${run.ours.workerPeakRssMiB} (worker) | ${pair(single(kind)?.ours)} | ${durable({ events: events?.ours.historyEvents, writes: c.temporalDatabaseWritesPerBackup })} |`,
      );
      const f = run.floor;
      rows.push(
        `| ${ms} ms | Temporal's floor, ${kind} | ${f.throughputPerSec} | ${engineMs(f.cpuSecondsPerBackup, ['floorWorker', 'temporal'])} | ${sideMs(f.cpuSecondsPerBackup)} | – | ${pair(single(kind)?.floor)} | ${durable({ events: events?.floor.historyEvents, writes: f.temporalDatabaseWritesPerBackup })} |`,
      );
    }
  }
  const concurrency = throughput[0]?.concurrency ?? peers.dbos[0]?.concurrency ?? peers.restate?.[0]?.concurrency;
  return `side by side (${concurrency} backups in flight; ours started by the client, like the peers):\n${rows.join('\n')}`;
}
