import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CiphertextCounts, RotationReport } from '../contracts/rotate-keys-api';
import { percentile } from '../bench/percentile';
import type { PortalSimulator } from '../simulator/portal-simulator';
import type { BackupDriver } from './backup-driver';
import type { CampaignContext } from './campaign-context';
import type { CampaignOptions } from './campaign-options';
import type { CampaignStack } from './campaign-stack';
import type { InfraFaultInjector, CampaignUsers } from './fault-schedule';
import { INVARIANTS, type BackupOutcome, type Invariant, type ViolationLog } from './invariants';
import { unansweredCallCounts } from './resilient';
import type { Verdict } from './verdict';
import { CLUSTER_FAULTS, type ClusterFault, type ClusterFaultEvent, type InfraFaultCounts } from './infra-faults';

export { CLUSTER_FAULTS, type ClusterFault, type InfraFault } from './infra-faults';

/** How long one kind of cluster fault held backups up (see `stallsOf`). */
export interface StallFigures {
  count: number;
  /** From the SIGKILL to the first backup that completed after it: p50 and max over the faults of this kind. */
  stallMs: { p50: number; max: number };
  /** From the SIGKILL until the process was started again and the cluster served (history and matching answered). */
  backInServiceMs: { p50: number; max: number };
}

export interface CampaignReport {
  seed: number;
  mode: CampaignOptions['mode'];
  options: Omit<CampaignOptions, 'runDir' | 'quiet'>;
  durationMs: number;
  /** Set when `timeoutMs` ran out: only the backups that ended were checked (the rest are counted here). */
  timedOut?: { ended: number; open: number; neverStarted: number };
  backups: {
    total: number;
    completed: number;
    parkedByCampaign: number;
    other: number;
    doubleStarted: number;
    /** Runs of the users' workflows; more than `total` when a user ran again after its run closed. */
    runs: number;
    /** Users whose workflow ran more than once, one run after the other (a new backup by design, not a violation). */
    usersRunAgain: number;
  };
  operatorRetries: number;
  /** Faults on the simulator's own routes, by kind. */
  portalFaults: Record<string, number>;
  /** Self-managed: faults on Portal's calls to the webhook, by kind (`webhook-status`, …). */
  webhookFaults: Record<string, number>;
  infraFaults: InfraFaultCounts;
  /** Cluster mode: the server, and how long each kind of Temporal kill stalled backups. */
  cluster?: {
    serverVersion: string;
    historyShards: number;
    /** The gap between consecutive backup completions over the whole run (p50, p95): what "no stall" looks like. */
    completionGapMs: { p50: number; p95: number };
    stalls: Partial<Record<ClusterFault, StallFigures>>;
    /** Every cluster fault: when (ms into the run), and when the cluster served again. */
    events: ClusterFaultEvent[];
  };
  /** Client calls that got no answer within a minute and were asked again, by call (see `resilient`). */
  unansweredCalls: Record<string, number>;
  /** Processes that exited without being killed by the campaign (each was started again). */
  unexpectedExits: { process: string; code: number | null; at: number }[];
  /** Self-managed: what Portal delivered to the webhook and what the company holds at the end. */
  selfManaged?: {
    deliveries: { ok: number; failed: number; duplicates: number };
    fetches: { ok: number; failed: number };
    acknowledgedShares: number;
    custodianRows: number;
    clientCiphertextRows: number;
  };
  /** The key rotation started halfway through the backups. */
  rotation?:
    | { status: 'NOT_FINISHED' }
    | {
        status: string;
        durationMs: number;
        /** From the close of the last backup to the rotation's end (the rotation waits for pre-rotation backups, so this is its tail). */
        afterLastBackupMs: number;
        clientCiphertexts: CiphertextCounts;
        custodianShares: CiphertextCounts;
        usersDeferred: number;
        minDecryptionVersionRaised: boolean;
      };
  recoveries: { total: number; completed: number; orphanedSigningPairs: number };
  /** `backup coverage` over the campaign's users at the end, and the users it disagreed with the campaign on (coverage-disagrees). */
  coverage?: { users: number; covered: number; problems: Record<string, number>; keyVersions: Record<string, number>; disagreements: number; durationMs: number };
  orphans: number;
  completionMs: { p50: number; p95: number; max: number };
  /** The same over backups the campaign did not park on purpose (a revoked key waits on the operator). */
  completionWithoutOperatorMs: { p50: number; p95: number; max: number };
  /** The slowest completed backups: where their time went (the run's own step durations). */
  slowest: { userId: string; ms: number; revokedByCampaign: boolean; stepDurationsMs: Record<string, number> }[];
  violations: Record<Invariant, number>;
  violationTotal: number;
  violationDetails: ViolationLog['details'];
  runDir: string;
}

/** The report of a run: what was done to it, what it did, and what the checks found; also written to <run dir>/report.json. */
export function writeReport(ctx: CampaignContext, stack: CampaignStack, users: CampaignUsers, driver: BackupDriver, injector: InfraFaultInjector, verdict: Verdict): CampaignReport {
  const { options, started } = ctx;
  const { simulator, cluster } = stack;
  const { runDir: _dir, quiet: _quiet, ...reported } = options;
  const firedByKind = Object.entries(simulator.faults.firedByKind());
  const statuses = [...driver.outcomes.values()];
  const report: CampaignReport = {
    seed: options.seed,
    mode: options.mode,
    options: reported,
    durationMs: Date.now() - started,
    ...(driver.timedOut ? { timedOut: { ended: driver.outcomes.size, open: driver.inFlight.size, neverStarted: users.userIds.length - driver.next } } : {}),
    backups: {
      total: users.userIds.length,
      completed: statuses.filter((o) => o.status === 'COMPLETED').length,
      parkedByCampaign: statuses.filter((o) => o.status === 'NEEDS_ATTENTION' && o.revokedByCampaign).length,
      other: statuses.filter((o) => o.status !== 'COMPLETED' && !(o.status === 'NEEDS_ATTENTION' && o.revokedByCampaign)).length,
      doubleStarted: users.doubleStart.size,
      runs: verdict.runCount,
      usersRunAgain: verdict.usersRunAgain,
    },
    operatorRetries: driver.operatorRetries,
    portalFaults: Object.fromEntries(firedByKind.filter(([kind]) => !kind.startsWith('webhook-'))),
    webhookFaults: Object.fromEntries(firedByKind.filter(([kind]) => kind.startsWith('webhook-'))),
    infraFaults: injector.counts,
    unexpectedExits: stack.supervisor.unexpectedExits,
    unansweredCalls: unansweredCallCounts(),
    ...(cluster ? { cluster: { serverVersion: cluster.serverVersion, historyShards: cluster.historyShards, ...stallsOf(injector.clusterEvents, statuses, started) } } : {}),
    ...(options.mode === 'self-managed' ? { selfManaged: selfManagedFigures(simulator, verdict) } : {}),
    ...(driver.rotationStarted ? { rotation: rotationFigures(driver.rotationReport, statuses) } : {}),
    recoveries: {
      total: driver.recoveryOutcomes.size,
      completed: [...driver.recoveryOutcomes.values()].filter((o) => o.status === 'COMPLETED').length,
      orphanedSigningPairs: [...driver.recoveryOutcomes.values()].reduce((sum, o) => sum + (o.result?.orphanedSigningPairIds.length ?? 0), 0),
    },
    coverage: { ...verdict.coverage.summary, disagreements: verdict.coverage.disagreements },
    orphans: verdict.orphans,
    ...completionFigures(statuses),
    violations: verdict.violations.counts,
    violationTotal: verdict.violations.total,
    violationDetails: verdict.violations.details,
    runDir: options.runDir,
  };
  writeFileSync(join(options.runDir, 'report.json'), JSON.stringify(report, null, 2));
  return report;
}

/** Self-managed: what Portal delivered to the webhook, and what the company holds at the end. */
function selfManagedFigures(simulator: PortalSimulator, verdict: Verdict): NonNullable<CampaignReport['selfManaged']> {
  const deliveries = simulator.webhookDeliveries;
  const count = (call: 'backup' | 'fetch', outcome: 'ok' | 'failed') => deliveries.filter((c) => c.call === call && c.outcome === outcome).length;
  return {
    deliveries: { ok: count('backup', 'ok'), failed: count('backup', 'failed'), duplicates: deliveries.filter((call) => call.duplicate).length },
    fetches: { ok: count('fetch', 'ok'), failed: count('fetch', 'failed') },
    acknowledgedShares: verdict.acknowledgedShares,
    custodianRows: verdict.custodianRowCount,
    clientCiphertextRows: verdict.clientCiphertextRows,
  };
}

function rotationFigures(rotationReport: RotationReport | undefined, outcomes: BackupOutcome[]): NonNullable<CampaignReport['rotation']> {
  if (!rotationReport) return { status: 'NOT_FINISHED' };
  return {
    status: rotationReport.status,
    durationMs: rotationReport.durationMs,
    afterLastBackupMs: Date.parse(rotationReport.finishedAt) - Math.max(...outcomes.map((o) => o.closedAt ?? 0)),
    clientCiphertexts: rotationReport.counts.clientCiphertexts,
    custodianShares: rotationReport.counts.custodianShares,
    usersDeferred: rotationReport.counts.usersDeferred,
    minDecryptionVersionRaised: rotationReport.minDecryptionVersion.raised === true,
  };
}

/** Completion times (all, and without the users the campaign parked on purpose) and the slowest backups. */
function completionFigures(outcomes: BackupOutcome[]): Pick<CampaignReport, 'completionMs' | 'completionWithoutOperatorMs' | 'slowest'> {
  const completedTimes = outcomes
    .filter((o) => o.status === 'COMPLETED' && o.closedAt && o.startedAt)
    .map((o) => ({ outcome: o, ms: o.closedAt! - o.startedAt! }))
    .sort((a, b) => a.ms - b.ms);
  const durations = completedTimes.map((t) => t.ms);
  const withoutOperator = completedTimes.filter((t) => !t.outcome.revokedByCampaign).map((t) => t.ms);
  return {
    completionMs: { p50: percentile(durations, 50), p95: percentile(durations, 95), max: durations.at(-1) ?? 0 },
    completionWithoutOperatorMs: { p50: percentile(withoutOperator, 50), p95: percentile(withoutOperator, 95), max: withoutOperator.at(-1) ?? 0 },
    slowest: completedTimes.slice(-10).reverse().map(({ outcome, ms }) => ({
      userId: outcome.userId,
      ms,
      revokedByCampaign: outcome.revokedByCampaign,
      stepDurationsMs: { ...(outcome.result?.stepDurationsMs ?? {}) },
    })),
  };
}

/**
 * How long each kind of cluster fault stalled backups: from the SIGKILL to the first backup that
 * completed after it (while none completes, backups are held up), beside the gap between
 * consecutive completions over the whole run, which is what the same measure gives with no fault.
 */
export function stallsOf(
  events: { kind: ClusterFault; atMs: number; backInServiceMs: number }[],
  outcomes: BackupOutcome[],
  startedAt: number,
): Pick<NonNullable<CampaignReport['cluster']>, 'completionGapMs' | 'stalls' | 'events'> {
  const completions = outcomes
    .filter((o) => o.status === 'COMPLETED' && o.closedAt !== undefined)
    .map((o) => o.closedAt! - startedAt)
    .sort((a, b) => a - b);
  const gaps = completions.slice(1).map((at, i) => at - completions[i]!);
  gaps.sort((a, b) => a - b);
  const stalls: Partial<Record<ClusterFault, StallFigures>> = {};
  for (const kind of CLUSTER_FAULTS) {
    const ofKind = events.filter((event) => event.kind === kind);
    if (ofKind.length === 0) continue;
    const stallTimes = ofKind
      .map((event) => completions.find((at) => at >= event.atMs))
      .map((at, i) => (at === undefined ? undefined : at - ofKind[i]!.atMs))
      .filter((ms): ms is number => ms !== undefined)
      .sort((a, b) => a - b);
    const back = ofKind.map((event) => event.backInServiceMs).sort((a, b) => a - b);
    stalls[kind] = {
      count: ofKind.length,
      stallMs: { p50: percentile(stallTimes, 50), max: stallTimes.at(-1) ?? 0 },
      backInServiceMs: { p50: percentile(back, 50), max: back.at(-1) ?? 0 },
    };
  }
  return { completionGapMs: { p50: percentile(gaps, 50), p95: percentile(gaps, 95) }, stalls, events };
}

/** The KMS whose cuts and restarts the 'vault-cut' and 'vault-restart' faults counted (older reports: Vault). */
function kmsLabel(report: CampaignReport): string {
  return report.options.kms === 'aws-kms' ? 'KMS (local-kms)' : 'Vault';
}

export function summarize(report: CampaignReport): string {
  const lines = [
    `fault campaign, seed ${report.seed}: ${report.backups.total} backups in ${(report.durationMs / 1000).toFixed(1)} s`,
    `  completed ${report.backups.completed}, parked by the campaign ${report.backups.parkedByCampaign}, other ${report.backups.other}` +
      ` (double-started ${report.backups.doubleStarted}, operator retries ${report.operatorRetries})`,
    `  runs ${report.backups.runs}: ${report.backups.usersRunAgain} users ran again after their run had closed (a new backup, not a violation)`,
    `  Portal faults: ${Object.entries(report.portalFaults).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    `  process faults: worker SIGKILL ${report.infraFaults['worker-kill']}, Temporal restart ${report.infraFaults['temporal-restart']}, ` +
      `${kmsLabel(report)} restart ${report.infraFaults['vault-restart']}, ${kmsLabel(report)} cut ${report.infraFaults['vault-cut']} ` +
      (report.infraFaults['vault-cut'] > 0 ? `(${Object.entries(report.infraFaults.vaultCutModes).map(([k, v]) => `${k} ${v}`).join(', ')})` : '') +
      (report.mode === 'self-managed'
        ? `, PostgreSQL SIGKILL ${report.infraFaults['postgres-kill']}, webhook SIGKILL ${report.infraFaults['webhook-kill']}`
        : report.options.stores?.includes('postgres')
          ? `, PostgreSQL (a copy's store) SIGKILL ${report.infraFaults['postgres-kill']}`
          : ''),
    ...(report.options.stores ? [`  copies in: ${report.options.stores.join(', ')} (every marked pair checked in each: marked-pair-missing-copy)`] : []),
    ...(report.coverage
      ? [
          `  backup coverage over ${report.coverage.users} users: covered ${report.coverage.covered}, ` +
            `${Object.entries(report.coverage.problems).map(([problem, n]) => `${problem} ${n}`).join(', ')}; key versions ` +
            `${Object.entries(report.coverage.keyVersions).map(([version, n]) => `v${version} ${n}`).join(', ') || 'none'}; ` +
            `disagreeing with the campaign's account ${report.coverage.disagreements} (${(report.coverage.durationMs / 1000).toFixed(1)} s)`,
        ]
      : []),
    ...(report.cluster
      ? [
          `  Temporal cluster v${report.cluster.serverVersion}, ${report.cluster.historyShards} shards; SIGKILL and restart: ` +
            CLUSTER_FAULTS.map((kind) => `${kind.replace(/^temporal-/, '').replace(/-kill$/, '')} ${report.infraFaults[kind]}`).join(', '),
          `  stalls (SIGKILL → next completed backup; p50/max ms; back in service p50/max): ` +
            Object.entries(report.cluster.stalls)
              .map(([kind, f]) => `${kind.replace(/^temporal-/, '').replace(/-kill$/, '')} ${f.stallMs.p50}/${f.stallMs.max} (${f.backInServiceMs.p50}/${f.backInServiceMs.max})`)
              .join(', ') +
            `; gap between consecutive completions over the run p50 ${report.cluster.completionGapMs.p50}, p95 ${report.cluster.completionGapMs.p95}`,
        ]
      : []),
    ...(report.selfManaged
      ? [
          `  webhook faults: ${Object.entries(report.webhookFaults).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
          `  webhook calls: deliveries ok ${report.selfManaged.deliveries.ok}, failed ${report.selfManaged.deliveries.failed} ` +
            `(duplicates ${report.selfManaged.deliveries.duplicates}); fetches ok ${report.selfManaged.fetches.ok}, failed ${report.selfManaged.fetches.failed}; ` +
            `custodian shares acknowledged ${report.selfManaged.acknowledgedShares}, rows ${report.selfManaged.custodianRows}; ` +
            `client ciphertext rows ${report.selfManaged.clientCiphertextRows}`,
        ]
      : []),
    ...(Object.keys(report.unansweredCalls ?? {}).length > 0
      ? [`  calls asked again after a minute without an answer: ${Object.entries(report.unansweredCalls).map(([what, n]) => `${what} ${n}`).join(', ')}`]
      : []),
    ...(report.unexpectedExits.length > 0
      ? [`  processes that exited by themselves: ${report.unexpectedExits.map((exit) => `${exit.process} (code ${exit.code}, at ${exit.at} ms)`).join(', ')}`]
      : []),
    ...(report.rotation
      ? [
          'clientCiphertexts' in report.rotation
            ? `  key rotation mid-run: ${report.rotation.status} in ${(report.rotation.durationMs / 1000).toFixed(1)} s, ` +
              `${(report.rotation.afterLastBackupMs / 1000).toFixed(1)} s after the last backup closed; client ciphertexts rewrapped ` +
              `${report.rotation.clientCiphertexts.rewrapped}, already current ${report.rotation.clientCiphertexts.alreadyCurrent}, verified ` +
              `${report.rotation.clientCiphertexts.verified}, failed ${report.rotation.clientCiphertexts.failed}; custodian shares verified ` +
              `${report.rotation.custodianShares.verified}; users deferred ${report.rotation.usersDeferred}; min_decryption_version raised ${report.rotation.minDecryptionVersionRaised}`
            : '  key rotation mid-run: did not finish',
        ]
      : []),
    `  recoveries: ${report.recoveries.completed}/${report.recoveries.total} completed, orphaned signing pairs named ${report.recoveries.orphanedSigningPairs}`,
    `  orphaned pairs ${report.orphans}; completion p50 ${report.completionMs.p50} ms, p95 ${report.completionMs.p95} ms, max ${report.completionMs.max} ms` +
      ` (without the users parked on purpose: p50 ${report.completionWithoutOperatorMs.p50}, p95 ${report.completionWithoutOperatorMs.p95}, max ${report.completionWithoutOperatorMs.max} ms)`,
    `  violations: ${INVARIANTS.map((name) => `${name} ${report.violations[name]}`).join(', ')}`,
    ...(report.timedOut
      ? [
          `  INCOMPLETE: time ran out; ${report.timedOut.ended} backups ended and were checked, ` +
            `${report.timedOut.open} were still open, ${report.timedOut.neverStarted} never started`,
        ]
      : []),
    report.violationTotal > 0
      ? `  FAIL: ${report.violationTotal} violations (see report.json)`
      : report.timedOut
        ? '  zero violations among the backups checked, but not a pass: the campaign did not finish'
        : '  PASS: zero violations',
    `  reproduce: npm run chaos -- --backups ${report.backups.total} --seed ${report.seed}${report.mode === 'self-managed' ? ' --self-managed' : ''}${report.cluster ? ' --cluster' : ''}${report.options.kms === 'aws-kms' ? ' --kms aws-kms' : ''}${report.options.stores ? ` --stores ${report.options.stores.join(',')}` : ''}${report.options.rotateMidRun ? '' : ' --no-rotation'}`,
  ];
  return lines.join('\n');
}
