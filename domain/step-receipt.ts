/**
 * Step receipts (activities/step-receipts.ts): the proof a step's result carries that a worker of
 * this run made it. Shared by the activities that make and check them and the workflows that pass
 * them on; the workflows only check a receipt's shape, never its MAC (they hold no key).
 */

import { CURVES } from './curves';
import type { BackupPairIds } from './backup-types';

/**
 * Steps whose results something acts on: a later step (STORE's before MARK, …), the run's own end
 * (MARK's and MARK_SIGNING's before COMPLETED), a drill's report (each verdict), or the raise of
 * min_decryption_version (the rotation's census and its check).
 */
export const RECEIPT_STEPS = [
  'ENCRYPT',
  'STORE',
  'CHECK_CUSTODIAN',
  'MARK',
  'DECRYPT',
  'HAND_OVER',
  'MARK_SIGNING',
  'DRILL_VERDICT',
  'ROTATION_CENSUS',
  'RAISE_CHECK',
  'AUDIT_EVENT',
] as const;
export type ReceiptStep = (typeof RECEIPT_STEPS)[number];

/** What a receipt vouches for: string facts by name (a user, pair ids, digests, a verdict, counts). */
export type ReceiptClaims = Record<string, string>;

/** A receipt's facts about a user's pairs: one per curve. */
export function pairClaims(userId: string, pairIds: BackupPairIds): ReceiptClaims {
  return { userId, ...Object.fromEntries(CURVES.map((curve) => [`pair.${curve}`, pairIds[curve]])) };
}

export interface StepReceipt {
  step: ReceiptStep;
  /** The sealing key the receipt key was derived from. */
  keyId: string;
  /** HMAC-SHA256, hex. */
  mac: string;
}

/** The error type (activity failure type and recorded error) of a refused receipt. */
export const STEP_RECEIPT_INVALID = 'StepReceiptInvalidError';

/** True when `value` has a receipt of `step` in the expected shape (the MAC is checked by the activity that acts on it). */
export function hasReceiptOf(value: unknown, step: ReceiptStep): value is { receipt: StepReceipt } {
  if (typeof value !== 'object' || value === null) return false;
  const receipt = (value as { receipt?: unknown }).receipt;
  if (typeof receipt !== 'object' || receipt === null) return false;
  const { step: of, keyId, mac } = receipt as Partial<StepReceipt>;
  return of === step && typeof keyId === 'string' && keyId.length > 0 && typeof mac === 'string' && /^[0-9a-f]{64}$/.test(mac);
}

/** The step a refused receipt says to run again (the failure's details), if any. */
export function redoStepOf(details: unknown): ReceiptStep | undefined {
  const first = Array.isArray(details) ? (details[0] as { redoStep?: unknown } | undefined) : undefined;
  const step = first?.redoStep;
  return (RECEIPT_STEPS as readonly unknown[]).includes(step) ? (step as ReceiptStep) : undefined;
}
