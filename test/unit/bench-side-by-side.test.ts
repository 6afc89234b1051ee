import { describe, expect, it } from 'vitest';
import { renderSideBySide } from '../../bench/report-table';

const timing = (p50Ms: number) => ({ p50Ms, p95Ms: p50Ms * 2, n: 50 });
const temporal = (kind: 'dev' | 'cluster') => ({ kind }) as never;
const throughputRun = (kind: 'dev' | 'cluster', latencyMs: number) => ({
  temporal: temporal(kind),
  latencyMs,
  users: 500,
  concurrency: 20,
  baseline: { completed: 500, failures: 0, throughputPerSec: 100, p50Ms: 10, p95Ms: 20, cpuSecondsPerBackup: { worker: 0.005, vault: 0.001, simulator: 0.002, temporal: 0 } },
  ours: { completed: 500, failures: 0, throughputPerSec: 12, p50Ms: 1, p95Ms: 2, cpuSecondsPerBackup: { worker: 0.03, vault: 0.002, simulator: 0.003, temporal: 0.04 }, workerPeakRssMiB: 300 },
  oursClientDriven: {
    completed: 500,
    failures: 0,
    throughputPerSec: kind === 'dev' ? 13 : 9,
    p50Ms: 1,
    p95Ms: 2,
    cpuSecondsPerBackup: { worker: 0.031, vault: 0.002, simulator: 0.003, temporal: kind === 'dev' ? 0.044 : 0.12 },
    ...(kind === 'cluster' ? { temporalDatabaseWritesPerBackup: { commits: 21.5, rowsWritten: 140, walKiB: 96.2 } } : {}),
  },
  floor: { completed: 500, failures: 0, throughputPerSec: 19, p50Ms: 1, p95Ms: 2, cpuSecondsPerBackup: { worker: 0.0005, vault: 0, simulator: 0, floorWorker: 0.02, temporal: 0.037 } },
  ratio: 1,
  cpuOverFloor: 1,
});
const latencyRun = (kind: 'dev' | 'cluster', latencyMs: number) => ({
  temporal: temporal(kind),
  latencyMs,
  baseline: timing(12),
  ours: timing(kind === 'dev' ? 90 : 150),
  oursEagerStart: timing(80),
  floor: timing(55),
  perBackup: { ours: { historyEvents: 31 }, floor: { historyEvents: 23 } },
});
const peer = (latencyMs: number) => ({
  latencyMs,
  users: 500,
  concurrency: 20,
  throughputPerSec: 18,
  p50Ms: 1,
  p95Ms: 2,
  cpuSecondsPerBackup: { peer: 0.02, postgres: 0.03, restate: 0.016, vault: 0.003, simulator: 0.006 },
  peerPeakRssMiB: 150,
  databaseWritesPerBackup: { commits: 12, rowsWritten: 30, walKiB: 20.5 },
  journalEntriesPerBackup: 12,
  serverPeakRssMiB: 270,
  oneAtATime: { client: timing(45), workflow: timing(40) },
});

describe('the side-by-side table of issue 20', () => {
  it('puts the script, both peers, ours and the floor on each Temporal in one table per Portal latency, CPU summed over the engine, its database and the worker', () => {
    const table = renderSideBySide({
      throughput: [throughputRun('dev', 0), throughputRun('cluster', 0)],
      latency: [latencyRun('dev', 0), latencyRun('cluster', 0)],
      peers: { dbos: [peer(0)], restate: [peer(0)] },
    });
    const rows = table.split('\n').filter((line) => line.startsWith('| 0 ms'));
    expect(rows.map((row) => row.split(' | ')[1])).toEqual([
      'plain script (no durability)',
      'DBOS (PostgreSQL)',
      'Restate (restate-server)',
      'ours, Temporal dev',
      "Temporal's floor, dev",
      'ours, Temporal cluster',
      "Temporal's floor, cluster",
    ]);
    // DBOS: peer 20 + PostgreSQL 30 ms; Restate: peer 20 + server 16 ms; ours on the cluster: worker 31 + Temporal 120 ms; floor: floor worker 20 + Temporal 37 ms.
    expect(rows[1]).toContain('| 50.0 |');
    expect(rows[2]).toContain('| 36.0 |');
    expect(rows[5]).toContain('| 9 | 151.0 |');
    expect(rows[6]).toContain('| 57.0 |');
    // One at a time: ours on the cluster from the cluster's latency run, the script from the latency part.
    expect(rows[5]).toContain('| 150 / 300 |');
    expect(rows[0]).toContain('| 12 / 24 | nothing |');
    // What each engine made durable per backup, where the run measured it.
    expect(rows[1]).toContain('PostgreSQL 12 commits, 30 rows, 20.5 KiB WAL');
    expect(rows[2]).toContain('12 journal entries');
    expect(rows[3]).toMatch(/\| 31 events \|$/);
    expect(rows[5]).toContain('31 events; PostgreSQL 21.5 commits, 140 rows, 96.2 KiB WAL');
    expect(rows[6]).toMatch(/\| 23 events \|$/);
  });

  it('is empty when neither the throughput part nor the peers ran', () => {
    expect(renderSideBySide({ latency: [latencyRun('dev', 0)] })).toBe('');
  });
});
