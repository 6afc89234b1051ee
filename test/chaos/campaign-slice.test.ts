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
      // Every fault kind is armed once anyway; a lower background rate keeps the slice short
      // inside npm test.
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
    // A key rotation halfway through, and recoveries after the backups, under the same faults.
    expect(report.rotation && 'minDecryptionVersionRaised' in report.rotation && report.rotation.minDecryptionVersionRaised, context).toBe(true);
    expect(report.recoveries.total, context).toBeGreaterThanOrEqual(1);
    expect(report.recoveries.completed, context).toBe(report.recoveries.total);
    expect(report.violationTotal, context).toBe(0);
  });

  /**
   * The same slice on AWS KMS envelope encryption (local-kms): its cuts and SIGKILL restarts take
   * Vault's place, and the mid-run rotation is a new KMS key version, ReEncrypt and DisableKey.
   */
  it('aws-kms: keeps every invariant through local-kms cuts and restarts', { timeout: 15 * 60_000 }, async () => {
    const seed = Number(process.env.CHAOS_AWS_KMS_SEED ?? process.env.CHAOS_SEED ?? randomBytes(3).readUIntBE(0, 3));
    const replay = `CHAOS_AWS_KMS_SEED=${seed} npx vitest run test/chaos -t aws-kms`;
    process.stdout.write(`aws-kms slice, seed ${seed} (replay: ${replay})\n`);
    const report = await runCampaign({
      kms: 'aws-kms',
      backups: 20,
      concurrency: 10,
      seed,
      revokedShare: 0.05,
      portalFaultRate: 0.01,
      meanFaultIntervalMs: 45_000,
      timeoutMs: 12 * 60_000,
      runDir: join(inject('runDir'), `chaos-aws-kms-slice-${seed}`),
      quiet: true,
    });
    const summary = summarize(report);
    process.stdout.write(`${summary}\n`);
    const context = `seed ${seed} (replay: ${replay})\n${summary}\n${JSON.stringify(report.violationDetails, null, 1)}`;
    expect(report.infraFaults['vault-cut'], `local-kms cuts; ${context}`).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['vault-restart'], `local-kms restarts; ${context}`).toBeGreaterThanOrEqual(1);
    expect(report.backups.completed, context).toBe(20);
    expect(report.rotation && 'minDecryptionVersionRaised' in report.rotation && report.rotation.minDecryptionVersionRaised, context).toBe(true);
    expect(report.recoveries.completed, context).toBe(report.recoveries.total);
    expect(report.violationTotal, context).toBe(0);
  });

  /**
   * Self-Managed Backups: the campaign's own PostgreSQL and webhook process, each SIGKILLed at
   * least once, every webhook fault kind, client ciphertexts in PostgreSQL, and the custodian-share
   * invariants (acknowledged → held and decrypting to what Portal sent; marked → held).
   */
  it('self-managed: keeps every invariant through PostgreSQL and webhook kills', { timeout: 15 * 60_000 }, async () => {
    const seed = Number(process.env.CHAOS_SELF_MANAGED_SEED ?? process.env.CHAOS_SEED ?? randomBytes(3).readUIntBE(0, 3));
    const replay = `CHAOS_SELF_MANAGED_SEED=${seed} npx vitest run test/chaos -t self-managed`;
    process.stdout.write(`self-managed slice, seed ${seed} (replay: ${replay})\n`);
    const report = await runCampaign({
      mode: 'self-managed',
      backups: 20,
      concurrency: 10,
      seed,
      revokedShare: 0.05,
      portalFaultRate: 0.01,
      webhookFaultRate: 0.01,
      meanFaultIntervalMs: 45_000,
      timeoutMs: 12 * 60_000,
      runDir: join(inject('runDir'), `chaos-self-managed-slice-${seed}`),
      quiet: true,
    });
    const summary = summarize(report);
    process.stdout.write(`${summary}\n`);
    const context = `seed ${seed} (replay: ${replay})\n${summary}\n${JSON.stringify(report.violationDetails, null, 1)}`;
    expect(report.infraFaults['postgres-kill'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['webhook-kill'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['worker-kill'], context).toBeGreaterThanOrEqual(1);
    for (const kind of ['webhook-status', 'webhook-timeout', 'webhook-refused', 'webhook-lost-response', 'webhook-duplicate', 'webhook-wrong-secret']) {
      expect(report.webhookFaults[kind] ?? 0, `${kind} never fired; ${context}`).toBeGreaterThanOrEqual(1);
    }
    expect(report.selfManaged?.acknowledgedShares ?? 0, context).toBeGreaterThanOrEqual(40);
    expect(report.selfManaged?.clientCiphertextRows ?? 0, context).toBeGreaterThanOrEqual(40);
    expect(report.backups.completed, context).toBe(20);
    expect(report.violationTotal, context).toBe(0);
  });
});
