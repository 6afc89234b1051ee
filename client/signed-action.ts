import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defineQuery } from '@temporalio/workflow';
import { AWAITING_APPROVAL } from '../contracts/recover-wallet-api';
import type { OperatorActionKind, SignedOperatorAction } from '../domain/operator-action';
import { BackupNotFoundError } from './backup-client';
import type { OperatorSigner } from './operator-signer';

/**
 * The current run of `workflowId` and `signer`'s signed `kind` on it: an update is then sent to that
 * very run (a newer run would refuse a statement signed for another).
 */
export async function signOnCurrentRun(
  temporal: Client,
  signer: OperatorSigner,
  target: { workflowId: string; userId: string; noun: string },
  kind: OperatorActionKind,
  reason?: string,
): Promise<{ runId: string; action: SignedOperatorAction }> {
  let runId: string;
  try {
    runId = (await temporal.workflow.getHandle(target.workflowId).describe()).runId;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new BackupNotFoundError(`no ${target.noun} was ever started for user ${target.userId}`);
    throw error;
  }
  if (kind.endsWith('-approve') || kind.endsWith('-reject')) await untilRequesterVerified(temporal, target.workflowId, runId);
  const action = await signer.sign({ kind, workflowId: target.workflowId, runId, userId: target.userId, ...(reason !== undefined ? { reason } : {}) });
  return { runId, action };
}

/** The `progress` query of a run that waits for approvals (a recovery's or an eject's), as far as this needs it. */
const approvalProgressQuery = defineQuery<{ status: string; approval?: unknown }>('progress');
const REQUESTER_CHECK_WAIT_MS = 30_000;

/**
 * A run that has just started waits at AWAITING_APPROVAL while a worker verifies its requester, and
 * refuses approvals until then ("still verifying its requester"): an approver who acts right after
 * the request waits for that check here (polled, for at most 30 s) instead of being refused. Any
 * other state is left to the update, which refuses with the run's own reason.
 */
async function untilRequesterVerified(temporal: Client, workflowId: string, runId: string): Promise<void> {
  const handle = temporal.workflow.getHandle(workflowId, runId);
  const deadline = Date.now() + REQUESTER_CHECK_WAIT_MS;
  while (Date.now() < deadline) {
    const progress = await handle.query(approvalProgressQuery).catch(() => undefined);
    if (!progress || progress.status !== AWAITING_APPROVAL || progress.approval !== undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
