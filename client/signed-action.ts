import { WorkflowNotFoundError, type Client } from '@temporalio/client';
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
  const action = await signer.sign({ kind, workflowId: target.workflowId, runId, userId: target.userId, ...(reason !== undefined ? { reason } : {}) });
  return { runId, action };
}
