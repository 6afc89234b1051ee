import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { CLUSTER_FAULTS, runCampaign, summarize } from '../../chaos/campaign';

/**
 * The fault campaign's slice on a Temporal cluster of its own (not the shared one: its processes
 * are killed): each Temporal service — history with transfers in flight, matching with tasks
 * queued, frontend with the workers' long polls open, the internal worker — and Temporal's
 * PostgreSQL are SIGKILLed and started again while backups run, beside a worker SIGKILL, a Vault
 * cut and a Vault restart; every invariant must hold. The seed is printed to replay the schedule.
 */
describe('fault campaign on a Temporal cluster (slice)', () => {
  it('keeps every invariant while each Temporal service and its PostgreSQL are killed', { timeout: 15 * 60_000 }, async () => {
    const seed = Number(process.env.CHAOS_CLUSTER_SEED ?? randomBytes(3).readUIntBE(0, 3));
    const replay = `CHAOS_CLUSTER_SEED=${seed} npx vitest run test/cluster/cluster-fault-slice.test.ts`;
    process.stdout.write(`cluster fault slice, seed ${seed} (replay: ${replay})\n`);
    const report = await runCampaign({
      cluster: true,
      backups: 24,
      concurrency: 8,
      seed,
      revokedShare: 0.05,
      portalFaultRate: 0.01,
      // The milestones fire every cluster fault once; random faults on top would only lengthen it.
      meanFaultIntervalMs: 60 * 60_000,
      recoveryShare: 0.1,
      timeoutMs: 12 * 60_000,
      runDir: join(inject('runDir'), `chaos-cluster-slice-${seed}`),
      quiet: true,
    });
    const summary = summarize(report);
    process.stdout.write(`${summary}\n`);
    const context = `seed ${seed} (replay: ${replay})\n${summary}\n${JSON.stringify(report.violationDetails, null, 1)}`;
    for (const kind of CLUSTER_FAULTS) expect(report.infraFaults[kind], `${kind} never fired; ${context}`).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['worker-kill'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['vault-cut'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['vault-restart'], context).toBeGreaterThanOrEqual(1);
    expect(report.timedOut, context).toBeUndefined();
    expect(report.backups.completed, context).toBe(24);
    expect(report.recoveries.completed, context).toBe(report.recoveries.total);
    expect(report.violationTotal, context).toBe(0);
  });
});
