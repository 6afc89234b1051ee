import { Context } from '@temporalio/activity';
import type { BackupPairIds } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import type { EncryptSharesResult } from '../backup-activity-types';
import { sha256Hex } from '../share-plaintext';
import type { ReceiptClaims } from '../../domain/step-receipt';
import type { ReceiptRun } from '../step-receipts';
import { WorkflowIdMismatchError } from '../../domain/errors';

/** The running activity's workflow execution: the run a receipt is made for or checked against. */
export function currentRun(): ReceiptRun {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw new Error('a step receipt belongs to a workflow run, and this activity runs outside one');
  return { workflowId: execution.workflowId, runId: execution.runId };
}

export { pairClaims } from '../../domain/step-receipt';

/** ENCRYPT's facts: each pair, the digest of what was encrypted and of the ciphertext made. */
export function encryptedClaims(userId: string, encrypted: EncryptSharesResult): ReceiptClaims {
  return {
    userId,
    ...Object.fromEntries(
      CURVES.flatMap((curve) => [
        [`pair.${curve}`, encrypted[curve].pairId],
        [`plaintextSha256.${curve}`, encrypted[curve].plaintextSha256],
        [`ciphertextSha256.${curve}`, sha256Hex(Buffer.from(encrypted[curve].ciphertext, 'utf8'))],
      ]),
    ),
  };
}

export function pairIdsOfEncrypted(encrypted: EncryptSharesResult): BackupPairIds {
  return Object.fromEntries(CURVES.map((curve) => [curve, encrypted[curve].pairId])) as BackupPairIds;
}

/**
 * Refuses a run whose workflow id is not the one its user's runs must have (`expected`): the
 * guards that keep one run per user and the rotation's deferral find runs by that id.
 */
export function requireOwnWorkflowId(expected: string, userId: string): void {
  const actual = Context.current().info.workflowExecution?.workflowId;
  if (actual !== expected) {
    throw new WorkflowIdMismatchError(
      `refused: this run of user ${userId} has workflow id "${String(actual)}", not "${expected}"; start it with the project client, CLI or HTTP API, which use that id`,
    );
  }
}
