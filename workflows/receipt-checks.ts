/**
 * Receipts the workflow checks itself (activities/receipt-checks.ts), through a local activity:
 * one that cannot be completed by id from outside. Each check adds a marker to history.
 */
import { proxyLocalActivities } from '@temporalio/workflow';
import type { ReceiptCheck, ReceiptCheckActivities } from '../activities/receipt-checks';
import { STEP_RECEIPT_INVALID, type ReceiptClaims, type ReceiptStep } from '../domain/step-receipt';
import { StepResultRefused } from './run-helpers';

const local = proxyLocalActivities<ReceiptCheckActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

/** For each check, null when verified, else why it was refused. */
export function refusedReceipts(checks: ReceiptCheck[]): Promise<(string | null)[]> {
  return checks.length === 0 ? Promise.resolve([]) : local.checkStepReceipts(checks);
}

/** Returns when `result` carries this run's receipt of `step` for `claims`; else StepResultRefused (the run parks at `step`, and a retry runs it again). */
export async function requireVerifiedReceipt(step: ReceiptStep, claims: ReceiptClaims, result: unknown): Promise<void> {
  const receipt = typeof result === 'object' && result !== null ? (result as { receipt?: unknown }).receipt : undefined;
  const [refused] = await refusedReceipts([{ step, claims, receipt }]);
  if (refused) throw new StepResultRefused({ step, type: STEP_RECEIPT_INVALID, message: refused, at: new Date(Date.now()).toISOString() });
}
