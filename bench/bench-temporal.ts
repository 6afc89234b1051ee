import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startTemporalCluster, TEMPORAL_SERVICES, type TemporalCluster } from '../stack/temporal-cluster';
import { startTemporalDevServer } from '../stack/temporal-dev-server';
import { toolBinary } from '../stack/tool-binaries';
import { cpuSeconds, treeCpuSeconds } from './process-stats';

/** Which Temporal a bench run's stack runs on: the CLI's dev server, or the stack's cluster (stack/temporal-cluster.ts). */
export const TEMPORAL_KINDS = ['dev', 'cluster'] as const;
export type TemporalKind = (typeof TEMPORAL_KINDS)[number];

/** What the report says a run ran on. */
export type TemporalInfo =
  | { kind: 'dev'; cli: string }
  | { kind: 'cluster'; serverVersion: string; historyShards: number; services: string[]; postgres: string };

/** The dev server's settings every run of one bench shares (`--eager-activities`, `--dynamic-config`), and which Temporal. */
export interface ServerFlags {
  eagerActivities: string;
  dynamicConfig: string;
  temporal: TemporalKind;
}

/** One bench run's Temporal, dev server or cluster, as the stack uses it. */
export interface BenchTemporal {
  address: string;
  info: TemporalInfo;
  /** CPU seconds so far: `temporal` in all (a cluster's four services and its PostgreSQL), and each part of a cluster. */
  cpuReaders: Record<string, () => number>;
  /** The cluster's PostgreSQL (its writes per backup are measured); the dev server writes SQLite in its own process. */
  databaseUrl?: string;
  stop(): Promise<void>;
}

/** `--temporal dev,cluster` (or `--cluster`) as a list of kinds, in the order given. */
export function parseTemporalKinds(text: string): TemporalKind[] {
  const kinds = text.split(',').map((kind) => kind.trim()).filter(Boolean);
  const unknown = kinds.filter((kind) => !(TEMPORAL_KINDS as readonly string[]).includes(kind));
  if (kinds.length === 0 || unknown.length > 0) throw new Error(`--temporal: use ${TEMPORAL_KINDS.join(' and/or ')} (got '${text}')`);
  return [...new Set(kinds)] as TemporalKind[];
}

/**
 * The cluster reads its dynamic config from ops/temporal/dynamic-config.yaml (eager activities on,
 * as the dev server's default); the dev-server flags would silently not apply to it.
 */
function assertClusterFlags(flags: ServerFlags): void {
  if (flags.dynamicConfig !== '' || flags.eagerActivities === 'off') {
    throw new Error('--dynamic-config and --eager-activities off apply to the dev server only; the cluster takes ops/temporal/dynamic-config.yaml');
  }
}

export async function startBenchTemporal(dir: string, flags: ServerFlags): Promise<BenchTemporal> {
  return flags.temporal === 'cluster' ? benchCluster(dir, flags) : benchDevServer(dir, flags);
}

async function benchDevServer(dir: string, flags: ServerFlags): Promise<BenchTemporal> {
  const server = await startTemporalDevServer({
    logFile: join(dir, 'temporal.log'),
    eagerActivityExecution: flags.eagerActivities !== 'off',
    dynamicConfig: parseDynamicConfig(flags.dynamicConfig),
  });
  const cli = execFileSync(toolBinary('temporal'), ['--version'], { encoding: 'utf8' }).trim();
  return {
    address: server.address,
    info: { kind: 'dev', cli },
    cpuReaders: { temporal: () => cpuSeconds(server.process.child.pid!) },
    stop: () => server.stop(),
  };
}

async function benchCluster(dir: string, flags: ServerFlags): Promise<BenchTemporal> {
  assertClusterFlags(flags);
  // Its own PostgreSQL always (never TEMPORAL_DATABASE_URL's): its CPU counts in the cluster's.
  const cluster = await startTemporalCluster({ runDir: join(dir, 'temporal-cluster'), allowExternalDatabase: false, logLevel: 'warn' });
  const parts = clusterCpuReaders(cluster);
  return {
    address: cluster.address,
    info: {
      kind: 'cluster',
      serverVersion: cluster.serverVersion,
      historyShards: cluster.historyShards,
      services: TEMPORAL_SERVICES.map((name) => `${name} :${cluster.services[name].grpcPort}`),
      postgres: `PostgreSQL ${cluster.postgres.version ?? '?'} (${cluster.postgres.kind})`,
    },
    cpuReaders: { temporal: () => Object.values(parts).reduce((sum, read) => sum + read(), 0), ...parts },
    databaseUrl: cluster.postgres.url,
    stop: () => cluster.stop(),
  };
}

/** Each service's process, and the cluster's PostgreSQL with its backends. */
function clusterCpuReaders(cluster: TemporalCluster): Record<string, () => number> {
  const services = Object.fromEntries(TEMPORAL_SERVICES.map((name) => [`temporal-${name}`, () => cpuSeconds(cluster.services[name].process.child.pid!)]));
  return { ...services, 'temporal-postgres': () => treeCpuSeconds(cluster.postgres.pid!) };
}

/** `key=value,…` with JSON values, as `--dynamic-config` takes them. */
function parseDynamicConfig(text: string): Record<string, string | number | boolean> {
  return Object.fromEntries(
    text
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')).trim(), JSON.parse(pair.slice(pair.indexOf('=') + 1)) as string | number | boolean]),
  );
}

/** How the report names a run's Temporal: `dev (temporal version …)` or `cluster v1.31.2, 4 shards`. */
export function temporalLabel(info: TemporalInfo): string {
  return info.kind === 'dev' ? `dev server (${info.cli})` : `cluster v${info.serverVersion}, ${info.historyShards} shards`;
}
