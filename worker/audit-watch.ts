import type { AuditTrail } from '../db/audit-trail';
import { sealAuditHead, verifyAuditTrail } from '../db/audit-seals';
import type { AuditSigner } from '../db/audit-chain';
import type { WorkerMetrics } from '../metrics/service-metrics';

export interface AuditWatchOptions {
  trail: AuditTrail;
  signer: AuditSigner;
  sealIntervalMs: number;
  verifyIntervalMs: number;
  maxUnsealedAgeMs: number;
  metrics: Pick<WorkerMetrics, 'auditVerified'>;
  log: { info(fields: object, message: string): void; warn(fields: object, message: string): void; error(fields: object, message: string): void };
}

/**
 * The worker process's two audit chores, each on its own timer and never overlapping itself:
 * sealing the chain's head with Vault when it moved (so rows rewritten later are caught), and
 * verifying the whole trail, which sets mpc_backup_audit_chain_ok (ops/prometheus/alerts.yml alerts on 0).
 * Every worker may run them: two seals of one head are harmless, and each verifies independently.
 * A failure of either (database or Vault down) is logged and counted, and tried again next time.
 */
export function startAuditWatch(options: AuditWatchOptions): { stop(): Promise<void> } {
  const seal = async () => {
    try {
      const sealed = await sealAuditHead(options.trail, options.signer);
      if (sealed !== undefined) options.log.info({ seq: sealed, key: options.signer.keyName }, 'audit chain sealed');
    } catch (error) {
      options.log.warn({ error: (error as Error).message }, 'audit chain not sealed this time');
    }
  };
  const verify = async () => {
    try {
      const verification = await verifyAuditTrail(options.trail, options.signer, { maxUnsealedAgeMs: options.maxUnsealedAgeMs });
      options.metrics.auditVerified(verification.ok ? 'ok' : 'tampered', options.signer.keyName);
      if (!verification.ok) options.log.error({ first: verification.problems[0], problems: verification.problems.length }, 'audit trail failed verification');
    } catch (error) {
      options.metrics.auditVerified('unverifiable', options.signer.keyName);
      options.log.warn({ error: (error as Error).message }, 'audit trail could not be verified this time');
    }
  };
  const loops = [every(options.sealIntervalMs, seal), every(options.verifyIntervalMs, verify)];
  return { stop: async () => void (await Promise.all(loops.map((loop) => loop.stop()))) };
}

/** Runs `chore` now and then `intervalMs` after each run ends; `stop` waits for a run in progress. */
function every(intervalMs: number, chore: () => Promise<void>): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const run = () => {
    running = chore().finally(() => {
      if (!stopped) timer = setTimeout(run, intervalMs);
    });
  };
  run();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
