import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { parseTemporalKinds, type ServerFlags, type TemporalKind } from './bench-temporal';
import { latencyRun } from './latency';
import { dbosPeerRun } from './peers/dbos-run';
import { restatePeerRun } from './peers/restate-run';
import { fairnessRun } from './fairness';
import { rateLimitedRun } from './rate-limited';
import { renderTable } from './report-table';
import { scaleRun } from './scale';
import { throughputRun } from './throughput';

/**
 * `npm run bench`: the baseline script against the batch workflow over the same users, simulator
 * and Vault, and both against the floor (a bare workflow of four no-op activities on the same
 * server and worker settings); single-backup latency one at a time, with where the time goes,
 * history events and billable actions per backup; a rate-limited run with several worker
 * processes and Portal faults; a 10,000-wallet scale run; a CPU profile of the worker.
 * `--only latency` (or throughput, rate-limited, fairness, scale; comma-separated) runs parts alone.
 * `--only fairness`: single backups' latency on an idle system and during a rate-limited batch
 * (docs/performance.md, "Fairness under a batch").
 * `--temporal dev,cluster` runs the Temporal parts (throughput, latency, rate-limited, scale) on
 * the dev server and on the stack's cluster (stack/temporal-cluster.ts), one after the other, each
 * run naming what it ran on; `--cluster` is `--temporal cluster`.
 */
const PARTS = ['throughput', 'latency', 'rate-limited', 'fairness', 'scale', 'peers'] as const;
const program = new Command('bench')
  .option('--users <n>', 'users per throughput run', '2000')
  .option('--concurrency <n>', 'backups in flight, for both', '20')
  .option('--latencies <ms,…>', "simulator latency per Portal call ('' skips the throughput runs)", '0,50')
  .option('--rate-limited <n>', 'backups in the rate-limited run (0 to skip)', '300')
  .option('--rate-scale <k>', "the rate-limited run uses Portal's limits times k, to finish in minutes", '6')
  .option('--scale <n>', 'wallets in the scale run (0 to skip)', '10000')
  .option('--temporal <kinds>', "which Temporal the parts run on: dev (the CLI's dev server), cluster (frontend, history, matching, worker on PostgreSQL), or dev,cluster side by side", 'dev')
  .option('--cluster', 'the same as --temporal cluster')
  .option('--out <dir>', 'where to write results', 'bench-results')
  .option('--only <parts>', `run only these parts (${PARTS.join(', ')})`, PARTS.join(','))
  .option('--latency-runs <n>', 'backups one at a time per variant in the latency part (at least 50 for p95)', '50')
  .option('--latency-portal-ms <ms,…>', 'simulator latencies of the latency part', '0,50')
  .option('--eager-activities <on|off>', "the dev server's eager activity execution (system.enableActivityEagerExecution)", 'on')
  .option('--dynamic-config <key=value,…>', "more dev-server dynamic config, values as JSON (e.g. matching.numTaskqueueReadPartitions=1)", '')
  .option('--rate-workers <n>', 'worker processes in the rate-limited run', '4')
  .option('--rate-pace <factors>', 'the rate-limited runs start backups at these multiples of the default batch rate (above 1: faster than Portal allows, the shared limit must hold)', '1,1.5')
  .option('--peer-users <n>', 'users per throughput run of each peer (bench/peers/: DBOS, Restate)', '500')
  .option('--rate-fault-percent <p>', 'share of Portal requests that fail (5xx, HTML page, lost response, truncated body) in the rate-limited and fairness runs', '5')
  .option('--fairness-batch <n>', "backups in the fairness part's batch (at most 1000; with --rate-scale 6 it runs 5.6 minutes at its default pace)", '1000')
  // 100, not fewer: a p95 of 40 samples is their second-highest, and one more backup hit twice by the 5 % faults moved it by 1.7× between two runs.
  .option('--fairness-singles <n>', 'single backups measured in each phase of the fairness part (idle, during the batch; all must start while the batch runs)', '100')
  .option('--fairness-single-share <share>', "the singles' steady rate as a share of Portal's limit in backups per minute", '0.1')
  .parse();

const ROOT = join(__dirname, '..');

async function main(): Promise<void> {
  const o = program.opts<Record<string, string>>();
  const kinds: TemporalKind[] = o.cluster ? ['cluster'] : parseTemporalKinds(o.temporal!);
  // An absolute --out is used as given; a relative one is under the checkout.
  const out = resolve(ROOT, o.out!);
  mkdirSync(out, { recursive: true });
  // One Temporal: the parts' folders under --out as ever; several: a folder for each.
  const dirOf = (kind: TemporalKind) => (kinds.length > 1 ? join(out, kind) : out);
  const flagsOn = (temporal: TemporalKind): ServerFlags => ({ eagerActivities: o.eagerActivities!, dynamicConfig: o.dynamicConfig!, temporal });
  const only = new Set(o.only!.split(',').map((part) => part.trim()).filter(Boolean));
  const unknown = [...only].filter((part) => !(PARTS as readonly string[]).includes(part));
  if (unknown.length > 0) throw new Error(`--only: unknown part(s) ${unknown.join(', ')}; use ${PARTS.join(', ')}`);
  const results: Record<string, unknown> = {
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    // The machine is shared: its load around the run says how far the figures can be trusted.
    machine: { cores: cpus().length, node: process.version, loadAverageAtStart: loadavg() },
    temporalKinds: kinds,
    eagerActivityExecution: o.eagerActivities !== 'off',
    ...(o.dynamicConfig ? { dynamicConfig: o.dynamicConfig } : {}),
    startedAt: new Date().toISOString(),
  };
  const throughput = [];
  if (only.has('throughput')) {
    for (const [kind, latency] of eachKind(kinds, numbers(o.latencies!))) {
      process.stdout.write(`throughput run on Temporal ${kind}, simulator latency ${latency} ms…\n`);
      throughput.push(await throughputRun(latency, Number(o.users), Number(o.concurrency), dirOf(kind), flagsOn(kind)));
    }
  }
  results.throughput = throughput;
  if (only.has('latency')) {
    const latency = [];
    for (const [kind, portalMs] of eachKind(kinds, numbers(o.latencyPortalMs!))) {
      process.stdout.write(`single-backup latency on Temporal ${kind}, one at a time, simulator latency ${portalMs} ms…\n`);
      latency.push(await latencyRun(portalMs, Math.max(1, Number(o.latencyRuns)), dirOf(kind), flagsOn(kind)));
    }
    results.latency = latency;
  }
  if (only.has('rate-limited') && Number(o.rateLimited) > 0) {
    process.stdout.write('rate-limited run…\n');
    const runs: ({ temporal: TemporalKind } & Awaited<ReturnType<typeof rateLimitedRun>>)[] = [];
    results.rateLimited = runs;
    for (const [kind, pace] of eachKind(kinds, numbers(String(o.ratePace)))) {
      const run = { count: Number(o.rateLimited), scale: Number(o.rateScale), workers: Number(o.rateWorkers), faultPercent: Number(o.rateFaultPercent), pace };
      runs.push({ temporal: kind, ...(await rateLimitedRun(dirOf(kind), run, flagsOn(kind))) });
    }
  }
  if (only.has('fairness')) {
    process.stdout.write('fairness under a batch…\n');
    const runs: ({ temporal: TemporalKind } & Awaited<ReturnType<typeof fairnessRun>>)[] = [];
    results.fairness = runs;
    for (const kind of kinds) {
      const run = {
        batch: Number(o.fairnessBatch),
        singles: Number(o.fairnessSingles),
        singleShare: Number(o.fairnessSingleShare),
        scale: Number(o.rateScale),
        workers: Number(o.rateWorkers),
        faultPercent: Number(o.rateFaultPercent),
      };
      runs.push({ temporal: kind, ...(await fairnessRun(dirOf(kind), run, flagsOn(kind))) });
    }
  }
  if (only.has('peers')) {
    const dbos = [];
    const restate = [];
    const runs = [Number(o.peerUsers), Number(o.concurrency), Math.max(1, Number(o.latencyRuns)), out] as const;
    for (const latency of numbers(o.latencies!)) {
      process.stdout.write(`DBOS peer, simulator latency ${latency} ms…\n`);
      dbos.push(await dbosPeerRun(latency, ...runs));
      process.stdout.write(`Restate peer, simulator latency ${latency} ms…\n`);
      restate.push(await restatePeerRun(latency, ...runs));
    }
    results.peers = { dbos, restate };
  }
  if (only.has('scale') && Number(o.scale) > 0) {
    process.stdout.write(`scale run, ${o.scale} wallets…\n`);
    const scale = [];
    for (const kind of kinds) scale.push({ temporal: kind, ...(await scaleRun(Number(o.scale), dirOf(kind), flagsOn(kind))) });
    results.scale = kinds.length === 1 ? scale[0] : scale;
  }
  (results.machine as Record<string, unknown>).loadAverageAtEnd = loadavg();
  writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
  process.stdout.write(`${renderTable(results)}\nresults: ${join(out, 'results.json')}\n`);
}

/** `0,50` as numbers ('' is none). */
const numbers = (text: string): number[] => text.split(',').filter((value) => value.trim() !== '').map(Number);

/** Each value on each Temporal, the dev server's first (one Temporal at a time: never two stacks at once). */
const eachKind = <T>(kinds: TemporalKind[], values: T[]): [TemporalKind, T][] => kinds.flatMap((kind) => values.map((value) => [kind, value] as [TemporalKind, T]));

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
