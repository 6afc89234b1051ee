import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { runCampaign, summarize } from '../../chaos/campaign';

/**
 * The fast slice of the fault campaign: about 30 backups with at least one worker SIGKILL, one
 * Temporal restart, one Vault cut and one Vault restart, every Portal fault kind and a revoked
 * key, on servers of its own. The seed is printed on failure to replay the same schedule.
 */
describe('fault campaign (fast slice)', () => {
  it('keeps every invariant', { timeout: 15 * 60_000 }, async () => {
    const seed = Number(process.env.CHAOS_SEED ?? randomBytes(3).readUIntBE(0, 3));
    const report = await runCampaign({
      backups: 30,
      concurrency: 10,
      seed,
      revokedShare: 0.05,
      // Every fault kind is armed once anyway; a lower background rate keeps the slice's tail
      // (1-minute retry backoff under repeated faults) short inside npm test.
      portalFaultRate: 0.01,
      meanFaultIntervalMs: 45_000,
      timeoutMs: 12 * 60_000,
      runDir: join(inject('runDir'), `chaos-slice-${seed}`),
      quiet: true,
    });
    const summary = summarize(report);
    process.stdout.write(`${summary}\n`);
    const context = `seed ${seed} (replay: CHAOS_SEED=${seed} npx vitest run test/chaos)\n${summary}\n${JSON.stringify(report.violationDetails, null, 1)}`;
    expect(report.infraFaults['worker-kill'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['temporal-restart'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['vault-cut'], context).toBeGreaterThanOrEqual(1);
    for (const kind of ['status', 'rate-limit', 'html-error', 'hang', 'lost-response', 'malformed']) {
      expect(report.portalFaults[kind] ?? 0, `${kind} never fired; ${context}`).toBeGreaterThanOrEqual(1);
    }
    expect(report.operatorRetries, context).toBeGreaterThanOrEqual(1);
    expect(report.backups.completed, context).toBe(30);
    expect(report.violationTotal, context).toBe(0);
  });
});
