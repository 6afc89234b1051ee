import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { checkKeyRing, type KeyRing } from '../codec/key-ring';
import { StepReceiptInvalidError } from '../domain/errors';
import type { ReceiptClaims, ReceiptStep, StepReceipt } from '../domain/step-receipt';
import { ShareSealer } from '../adapters/sealing/share-sealer';

/** The run a receipt belongs to: the activity's own workflow execution. */
export interface ReceiptRun {
  workflowId: string;
  runId: string;
}

export type { ReceiptClaims } from '../domain/step-receipt';

const receiptShape = z.object({ step: z.string(), keyId: z.string().min(1), mac: z.string().regex(/^[0-9a-f]{64}$/) }).strict();

/** HKDF label: a receipt key is derived from a sealing key, so it is never the sealing key itself. */
const RECEIPT_KEY_INFO = 'mpc-backup/step-receipt/v1';

/**
 * Proof, made only by workers, that a step really ran and what it found. Anyone with Temporal
 * namespace access can complete an activity by id with a result of their choosing, and every
 * backend holds the payload codec key, so a result alone proves nothing; the activity that acts
 * on it (MARK on STORE's, RECOVER on DECRYPT's, …) checks its receipt before it calls Portal or
 * Vault. A receipt is an HMAC-SHA256 over the step, the run (workflow and run id) and the claims,
 * keyed by a key derived from the workers' sealing ring (SHARE_SEALING_KEYS), which no client,
 * CLI or codec server holds: rotating that ring rotates this one, and retired keys verify while
 * they stay in the ring.
 */
export class StepReceipts {
  private readonly keys: ReadonlyMap<string, Buffer>;

  constructor(private readonly ring: KeyRing) {
    checkKeyRing(ring, 'share sealing');
    this.keys = new Map([...ring.keys].map(([id, key]) => [id, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), RECEIPT_KEY_INFO, 32))]));
  }

  issue(step: ReceiptStep, run: ReceiptRun, claims: ReceiptClaims): StepReceipt {
    const keyId = this.ring.activeKeyId;
    return { step, keyId, mac: this.mac(keyId, step, run, claims) };
  }

  /** Throws StepReceiptInvalidError (naming `step`, the one to run again) unless `receipt` is this step's, for this run and claims. */
  verify(step: ReceiptStep, run: ReceiptRun, claims: ReceiptClaims, receipt: unknown): void {
    const parsed = receiptShape.safeParse(receipt);
    const refuse = (why: string) => {
      throw new StepReceiptInvalidError(
        `the ${step} step's result for ${subjectOf(claims)} ${why}: it did not come from a worker of this run ` +
          `(completed from outside, altered, or replayed from another run). Nothing was done with it; retry the run to run ${step} again`,
        step,
      );
    };
    if (!parsed.success) return refuse('carries no receipt');
    if (parsed.data.step !== step) return refuse(`carries a receipt of step ${parsed.data.step}`);
    if (!this.keys.has(parsed.data.keyId)) return refuse(`carries a receipt of key "${parsed.data.keyId}", which is not in SHARE_SEALING_KEYS`);
    const expected = Buffer.from(this.mac(parsed.data.keyId, step, run, claims), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(parsed.data.mac, 'hex'))) refuse('carries a receipt that does not match it');
  }

  private mac(keyId: string, step: ReceiptStep, run: ReceiptRun, claims: ReceiptClaims): string {
    // An array of sorted pairs: one encoding per set of facts, whatever order the caller built them in.
    const facts = Object.entries(claims).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const message = JSON.stringify([RECEIPT_KEY_INFO, step, run.workflowId, run.runId, facts]);
    return createHmac('sha256', this.keys.get(keyId)!).update(message).digest('hex');
  }
}

/** Whom a receipt's claims are about, for messages: a user, a rotation or a drill. */
function subjectOf(claims: ReceiptClaims): string {
  if (claims.userId !== undefined) return `user ${claims.userId}`;
  if (claims.rotationId !== undefined) return `rotation ${claims.rotationId}`;
  return 'this run';
}

/** The two things the workers make from their sealing ring: the sealer and the receipts. */
export function sealingDeps(ring: KeyRing): { sealer: ShareSealer; receipts: StepReceipts } {
  return { sealer: new ShareSealer(ring), receipts: new StepReceipts(ring) };
}
