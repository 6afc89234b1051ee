import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { QueryDefinition } from '@temporalio/common';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { BackupNotFoundError, describeFailure } from './backup-client';
import type { UserRunStatusView } from './run-views';

export type { UserRunStatusView } from './run-views';

/** Reads a user's latest run of `workflowId`: BackupNotFoundError (naming the noun) when there never was one. */
export async function userRunStatus<P, R>(temporal: Client, target: { userId: string; workflowId: string; noun: string }, progressQuery: QueryDefinition<P>): Promise<UserRunStatusView<P, R>> {
  const handle = temporal.workflow.getHandle(target.workflowId);
  let description;
  try {
    description = await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new BackupNotFoundError(`no ${target.noun} was ever started for user ${target.userId}`);
    throw error;
  }
  const view: UserRunStatusView<P, R> = { userId: target.userId, workflowId: description.workflowId, runId: description.runId, execution: description.status.name };
  const status = description.typedSearchAttributes.get(BackupStatusKey);
  const step = description.typedSearchAttributes.get(BackupStepKey);
  if (status !== undefined) view.status = status;
  if (step !== undefined) view.step = step;
  if (description.status.name === 'RUNNING') {
    const progress = await handle.query(progressQuery).catch(() => undefined);
    if (progress) view.progress = progress;
  } else if (description.status.name === 'COMPLETED') {
    view.result = (await handle.result()) as R;
  } else {
    await handle.result().catch((error: unknown) => {
      view.failure = describeFailure(error);
    });
  }
  return view;
}
