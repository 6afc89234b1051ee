import type { WorkflowExecutionStatusName } from '@temporalio/client';
import type { LoadedDataConverter } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';

/**
 * How operators see a run's activity in flight, one shape for every kind of run (backup status,
 * recover status, keys status): which step, which attempt, how long this attempt has run, the
 * last attempt's error (decoded with the client's codec), and when the next attempt starts.
 */
export interface PendingActivityView {
  type: string;
  attempt: number;
  /** SCHEDULED (waiting for a worker), STARTED (a worker runs it), CANCEL_REQUESTED, PAUSED… */
  state: string;
  /** When the current attempt started, and for how long it has run (seconds), while a worker runs it. */
  attemptStartedAt?: string;
  runningForSeconds?: number;
  lastHeartbeatAt?: string;
  /** The previous attempt's failure: why this is a retry. */
  lastFailure?: string;
  /** Between attempts: when the next one starts. */
  nextAttemptAt?: string;
}

type Timestamp = { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined;

function msOf(timestamp: Timestamp): number | undefined {
  if (!timestamp?.seconds) return undefined;
  const seconds = typeof timestamp.seconds === 'number' ? timestamp.seconds : timestamp.seconds.toNumber();
  return seconds * 1000 + Math.floor((timestamp.nanos ?? 0) / 1e6);
}

const isoOf = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export async function pendingActivityView(
  converter: LoadedDataConverter,
  pending: temporal.api.workflow.v1.IPendingActivityInfo,
  nowMs = Date.now(),
): Promise<PendingActivityView> {
  // Failure messages are encoded into payloads in history: decode with this client's codec.
  const lastFailure = await decodeOptionalFailureToOptionalError(converter, pending.lastFailure).catch(() => undefined);
  const state = String(temporal.api.enums.v1.PendingActivityState[pending.state ?? 0] ?? 'UNSPECIFIED').replace(/^PENDING_ACTIVITY_STATE_/, '');
  const started = state === 'STARTED' ? msOf(pending.lastStartedTime as Timestamp) : undefined;
  const view: PendingActivityView = { type: pending.activityType?.name ?? 'unknown', attempt: pending.attempt ?? 1, state };
  if (started !== undefined) {
    view.attemptStartedAt = isoOf(started)!;
    view.runningForSeconds = Math.max(0, Math.round((nowMs - started) / 1000));
  }
  const heartbeat = isoOf(msOf(pending.lastHeartbeatTime as Timestamp));
  if (heartbeat) view.lastHeartbeatAt = heartbeat;
  if (lastFailure?.message) view.lastFailure = lastFailure.message;
  const next = isoOf(msOf(pending.nextAttemptScheduleTime as Timestamp));
  if (next && state === 'SCHEDULED' && view.attempt > 1) view.nextAttemptAt = next;
  return view;
}

/** A user's run (backup, recovery, eject) as `status` shows it: its latest execution, published status and step, and its progress, result or failure. */
export interface UserRunStatusView<P, R> {
  userId: string;
  workflowId: string;
  runId: string;
  /** Temporal's view of the run: RUNNING, COMPLETED, FAILED, TERMINATED, CANCELLED, … */
  execution: WorkflowExecutionStatusName;
  status?: string;
  step?: string;
  progress?: P;
  result?: R;
  failure?: string;
}
