import type { Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { FleetControlRequest } from '../contracts/batch-backup-api';
import { requireSigner, signForCurrentRun, type OperatorSigner } from './operator-signer';

/** A fleet run's control, as the operator names it and as it is signed. */
export type FleetControl = 'pause' | 'resume' | 'cancel';

/**
 * Sends a signed pause, resume or cancel to the current run of a batch, drill or rotation
 * (`workflowId`): the statement names that act on that very run (no user), with a cancel's reason.
 * `notFound` turns "no such workflow" into the client's own error.
 */
export async function sendFleetControl<P>(
  temporal: Client,
  signer: OperatorSigner | undefined,
  target: { workflowId: string; control: FleetControl; update: UpdateDefinition<P, [FleetControlRequest]>; reason?: string; notFound?: (error: unknown) => unknown },
): Promise<P> {
  const { workflowId, control, update } = target;
  const operator = requireSigner(signer, `${control} ${workflowId}`);
  const reason = target.reason?.trim();
  const signed = await signForCurrentRun(temporal.workflow, operator, { kind: `fleet-${control}`, workflowId, ...(reason ? { reason } : {}) }, target.notFound ?? ((error) => error));
  const request: FleetControlRequest = { action: signed.action, ...(reason ? { reason } : {}) };
  return temporal.workflow.getHandle(workflowId, signed.runId).executeUpdate(update, { args: [request] });
}
