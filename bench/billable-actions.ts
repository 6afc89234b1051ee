import { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;
const EventType = temporal.api.enums.v1.EventType;

/** The search attribute the SDKs upsert for `patched()`; Temporal Cloud does not bill it. */
const CHANGE_VERSION_ATTRIBUTE = 'TemporalChangeVersion';

/** Temporal Cloud billable actions of one workflow run, by kind (https://docs.temporal.io/cloud/actions). */
export interface BillableActions {
  /** Workflow started: client start, signal-with-start, child start, continue-as-new (counted in the run it starts). */
  starts: number;
  /** Activity started or retried: one per attempt (the last attempt number of each scheduled activity). */
  activities: number;
  /** Local activities: one per marker (an upper bound: Cloud bills those of one workflow task as one). */
  localActivities: number;
  /** Activity heartbeats that reach the server: not in history, so estimated (see `estimateHeartbeats`). */
  heartbeats: number;
  /** UpsertWorkflowSearchAttributes commands, one each however many attributes; TemporalChangeVersion alone is free. */
  searchAttributeUpserts: number;
  /** Signals received by this run (from a client or another workflow; counted where received, never twice). */
  signals: number;
  /** Updates accepted by this run (rejected ones leave no event: add them through `extra`). */
  updates: number;
  /** Queries leave no event: only through `extra`. */
  queries: number;
  /** Timers started (including the implicit ones of `condition(fn, timeout)` and `sleep`). */
  timers: number;
  total: number;
  /** History events of the run (for scale: not billed). */
  historyEvents: number;
}

/** What a history cannot show: queries and rejected updates sent to the run, heartbeats measured elsewhere. */
export interface ExtraActions {
  queries?: number;
  rejectedUpdates?: number;
  /** Heartbeats that reached the server; by default estimated from each activity attempt's duration. */
  heartbeats?: number;
}

/** How the worker heartbeats, for the estimate (activities/activity-boundary.ts, worker defaults). */
export interface HeartbeatModel {
  /** The activity calls heartbeat() this often (HEARTBEAT_INTERVAL_MS). */
  intervalMs: number;
  /** The SDK sends at most one heartbeat per 0.8 × heartbeatTimeout (the first one at once). */
  throttleRatio?: number;
  /** The worker's maxHeartbeatThrottleInterval, when it caps that throttle. */
  maxThrottleMs?: number;
}

const seconds = (duration: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  duration ? Number(duration.seconds ?? 0) + (duration.nanos ?? 0) / 1e9 : 0;

const timeMs = (time: { seconds?: unknown; nanos?: number | null } | null | undefined): number => seconds(time) * 1000;

/**
 * Heartbeats an attempt of `durationMs` sends to the server: the activity calls heartbeat() every
 * `intervalMs`; the SDK sends the first at once and then at most one per throttle interval.
 */
export function estimateHeartbeats(durationMs: number, heartbeatTimeoutMs: number, model: HeartbeatModel): number {
  if (heartbeatTimeoutMs <= 0 || durationMs < model.intervalMs) return 0;
  const throttleMs = Math.max(model.intervalMs, Math.min(heartbeatTimeoutMs * (model.throttleRatio ?? 0.8), model.maxThrottleMs ?? Infinity));
  return 1 + Math.floor((durationMs - model.intervalMs) / throttleMs);
}

/**
 * Counts one run's Temporal Cloud billable actions from its real history: the one rule used by the
 * benchmark (and its unit test on a recorded history). Not billed: workflow tasks, activity and
 * workflow completions, patch markers and their TemporalChangeVersion upsert, search attributes
 * given at start.
 */
export function countBillableActions(history: History, extra: ExtraActions = {}, heartbeatModel?: HeartbeatModel): BillableActions {
  const events = history.events ?? [];
  const counts: BillableActions = {
    starts: 0,
    activities: 0,
    localActivities: 0,
    heartbeats: 0,
    searchAttributeUpserts: 0,
    signals: 0,
    updates: 0,
    queries: extra.queries ?? 0,
    timers: 0,
    total: 0,
    historyEvents: events.length,
  };
  const scheduled = new Map<string, { heartbeatTimeoutMs: number }>();
  const startedAt = new Map<string, number>();
  let estimatedHeartbeats = 0;
  for (const event of events) {
    switch (event.eventType) {
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        counts.starts += 1;
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        scheduled.set(String(event.eventId), { heartbeatTimeoutMs: seconds(event.activityTaskScheduledEventAttributes?.heartbeatTimeout) * 1000 });
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        // Only the last attempt is recorded (retries are not events): its number counts them all.
        counts.activities += Math.max(1, event.activityTaskStartedEventAttributes?.attempt ?? 1);
        startedAt.set(String(event.activityTaskStartedEventAttributes?.scheduledEventId), timeMs(event.eventTime));
        break;
      }
      case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
      case EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
      case EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
      case EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: {
        const attributes =
          event.activityTaskCompletedEventAttributes ??
          event.activityTaskFailedEventAttributes ??
          event.activityTaskTimedOutEventAttributes ??
          event.activityTaskCanceledEventAttributes;
        const scheduledId = String(attributes?.scheduledEventId);
        const start = startedAt.get(scheduledId);
        const timeout = scheduled.get(scheduledId)?.heartbeatTimeoutMs ?? 0;
        if (heartbeatModel && start !== undefined) estimatedHeartbeats += estimateHeartbeats(timeMs(event.eventTime) - start, timeout, heartbeatModel);
        break;
      }
      case EventType.EVENT_TYPE_MARKER_RECORDED:
        if (event.markerRecordedEventAttributes?.markerName === 'core_local_activity') counts.localActivities += 1;
        break;
      case EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
        const names = Object.keys(event.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {});
        if (names.some((name) => name !== CHANGE_VERSION_ATTRIBUTE)) counts.searchAttributeUpserts += 1;
        break;
      }
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        counts.signals += 1;
        break;
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        counts.updates += 1;
        break;
      case EventType.EVENT_TYPE_TIMER_STARTED:
        counts.timers += 1;
        break;
      default:
        break;
    }
  }
  counts.updates += extra.rejectedUpdates ?? 0;
  counts.heartbeats = extra.heartbeats ?? estimatedHeartbeats;
  counts.total =
    counts.starts +
    counts.activities +
    counts.localActivities +
    counts.heartbeats +
    counts.searchAttributeUpserts +
    counts.signals +
    counts.updates +
    counts.queries +
    counts.timers;
  return counts;
}

/** The mean of each count over several runs (per backup), rounded to 0.01. */
export function averageActions(all: BillableActions[]): BillableActions {
  const keys = ['starts', 'activities', 'localActivities', 'heartbeats', 'searchAttributeUpserts', 'signals', 'updates', 'queries', 'timers', 'total', 'historyEvents'] as const;
  const mean = Object.fromEntries(keys.map((key) => [key, Math.round((all.reduce((sum, a) => sum + a[key], 0) / Math.max(1, all.length)) * 100) / 100]));
  return mean as unknown as BillableActions;
}
