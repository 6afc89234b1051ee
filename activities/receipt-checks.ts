import { StepReceiptInvalidError } from '../domain/errors';
import type { ReceiptClaims, ReceiptStep } from '../domain/step-receipt';
import { currentRun } from './backup/backup-receipts';
import type { StepReceipts } from './step-receipts';

/** One receipt to check: the step that made it, the facts the workflow expects it to vouch for, and the receipt as received. */
export interface ReceiptCheck {
  step: ReceiptStep;
  claims: ReceiptClaims;
  receipt: unknown;
}

/**
 * Where a workflow checks a receipt itself, when nothing after a step would (MARK's and
 * MARK_SIGNING's before the run says COMPLETED, a drill's verdicts before its report counts them).
 * Run as a local activity: its result is recorded by the worker that ran it, in its own workflow
 * task, so it cannot be completed by id from outside as a scheduled activity can. The run is the
 * workflow's own (the local activity's execution).
 */
export function createReceiptCheckActivities(receipts: StepReceipts) {
  return {
    /** For each check, null when the receipt is this run's for those facts, else why it is refused. */
    async checkStepReceipts(checks: ReceiptCheck[]): Promise<(string | null)[]> {
      const run = currentRun();
      return checks.map(({ step, claims, receipt }) => {
        try {
          receipts.verify(step, run, claims, receipt);
          return null;
        } catch (error) {
          if (error instanceof StepReceiptInvalidError) return error.message;
          throw error;
        }
      });
    },
  };
}

export type ReceiptCheckActivities = ReturnType<typeof createReceiptCheckActivities>;
