import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { runCampaign, summarize } from '../../chaos/campaign';
import type { CampaignOptionsInput } from '../../chaos/campaign-options';

/**
 * The fast slice of the fault campaign: about 30 backups with at least one worker SIGKILL, one
 * Temporal restart, one Vault cut and one Vault restart, every Portal fault kind and a revoked
 * key, on servers of its own. The seed is printed on failure to replay the same schedule.
 */
/**
 * One slice on servers of its own: its seed (from `seedVariable`, else CHAOS_SEED, else random),
 * the campaign, its summary printed, and the context every assertion names (seed, replay command,
 * summary, violations). Every fault kind is armed once anyway; a low background rate (1% of Portal
 * requests, a process or network fault every 45 s on average) keeps a slice short inside npm test.
 */
async function runSlice(name: string, seedVariable: string, options: Partial<CampaignOptionsInput>) {
  const seed = Number(process.env[seedVariable] ?? process.env.CHAOS_SEED ?? randomBytes(3).readUIntBE(0, 3));
  const replay = `${seedVariable}=${seed} npx vitest run test/chaos${name ? ` -t ${name}` : ''}`;
  process.stdout.write(`${name || 'fast'} slice, seed ${seed} (replay: ${replay})\n`);
  const report = await runCampaign({
    backups: 20,
    concurrency: 10,
    seed,
    revokedShare: 0.05,
    portalFaultRate: 0.01,
    meanFaultIntervalMs: 45_000,
    timeoutMs: 12 * 60_000,
    runDir: join(inject('runDir'), `chaos-${name ? `${name}-` : ''}slice-${seed}`),
    quiet: true,
    ...options,
  });
  const summary = summarize(report);
  process.stdout.write(`${summary}\n`);
  return { report, context: `seed ${seed} (replay: ${replay})\n${summary}\n${JSON.stringify(report.violationDetails, null, 1)}` };
}

describe('fault campaign (fast slice)', () => {
  it('keeps every invariant', { timeout: 15 * 60_000 }, async () => {
    const { report, context } = await runSlice('', 'CHAOS_SEED', { backups: 30 });
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
   * Copies in two stores (CIPHERTEXT_STORES=portal,postgres) on AWS KMS envelope encryption
   * (local-kms): the campaign's PostgreSQL (one copy's store) is SIGKILLed at least once, and every
   * marked pair must have both copies, each decrypting to exactly what Portal issued
   * (marked-pair-missing-copy). local-kms is cut and SIGKILLed in Vault's place. The key rotation
   * runs halfway (a new KMS key version, ReEncrypt, DisableKey) and rewraps every copy: after its
   * raise, every copy of every marked pair is on the new version, one ciphertext per pair
   * (rotation-not-verified). (It is also the AWS KMS slice: a slice of its own on AWS KMS with one
   * store added nothing this one does not check, and CI's time.)
   */
  it('stores portal,postgres on aws-kms: every marked pair has both copies through PostgreSQL kills and local-kms cuts and restarts, and the rotation rewraps both', { timeout: 15 * 60_000 }, async () => {
    const { report, context } = await runSlice('stores', 'CHAOS_STORES_SEED', { kms: 'aws-kms', stores: ['portal', 'postgres'] });
    expect(report.infraFaults['postgres-kill'], context).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['vault-cut'], `local-kms cuts; ${context}`).toBeGreaterThanOrEqual(1);
    expect(report.infraFaults['vault-restart'], `local-kms restarts; ${context}`).toBeGreaterThanOrEqual(1);
    expect(report.backups.completed, context).toBe(20);
    expect(report.rotation && 'minDecryptionVersionRaised' in report.rotation && report.rotation.minDecryptionVersionRaised, context).toBe(true);
    expect(report.recoveries.completed, context).toBe(report.recoveries.total);
    expect(summarize(report), context).toContain('--stores portal,postgres');
    expect(report.violationTotal, context).toBe(0);
  });

  /**
   * Self-Managed Backups: the campaign's own PostgreSQL and webhook process, each SIGKILLed at
   * least once, every webhook fault kind, client ciphertexts in PostgreSQL, and the custodian-share
   * invariants (acknowledged → held and decrypting to what Portal sent; marked → held).
   */
  it('self-managed: keeps every invariant through PostgreSQL and webhook kills', { timeout: 15 * 60_000 }, async () => {
    const { report, context } = await runSlice('self-managed', 'CHAOS_SELF_MANAGED_SEED', { mode: 'self-managed', webhookFaultRate: 0.01 });
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
