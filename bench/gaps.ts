import { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;
const EventType = temporal.api.enums.v1.EventType;

/** Where one run's wall time went, from its history's event times (ms). */
export interface HistoryGaps {
  /** Start event to close event. */
  workflowMs: number;
  /** Workflow task scheduled → started: matching, transfer to the worker (sticky or not). */
  workflowTaskDispatchMs: number;
  /** Workflow task started → completed: the worker's activation, codec, commands back. */
  workflowTaskProcessingMs: number;
  /** Activity scheduled → started: matching and the poll (≈0 when dispatched eagerly). */
  activityDispatchMs: number;
  /** Activity started → completed: the activity's own work and its result's way back. */
  activityRunMs: number;
  /** Activity completed → the next workflow task scheduled (history service). */
  activityToWorkflowTaskMs: number;
  workflowTasks: number;
  activities: number;
  /** Activities whose start was recorded within 2 ms of their schedule (eagerly dispatched). */
  eagerActivities: number;
  /** Run time of each activity type (started → completed). */
  activityRunMsByType: Record<string, number>;
}

const ms = (time: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  time ? Number(time.seconds ?? 0) * 1000 + (time.nanos ?? 0) / 1e6 : 0;

export function historyGaps(history: History): HistoryGaps {
  const events = history.events ?? [];
  const at = new Map<string, number>();
  const typeOf = new Map<string, string>();
  const gaps: HistoryGaps = {
    workflowMs: 0,
    workflowTaskDispatchMs: 0,
    workflowTaskProcessingMs: 0,
    activityDispatchMs: 0,
    activityRunMs: 0,
    activityToWorkflowTaskMs: 0,
    workflowTasks: 0,
    activities: 0,
    eagerActivities: 0,
    activityRunMsByType: {},
  };
  let lastActivityCompletedAt: number | undefined;
  for (const event of events) {
    const t = ms(event.eventTime);
    at.set(String(event.eventId), t);
    switch (event.eventType) {
      case EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        if (lastActivityCompletedAt !== undefined) gaps.activityToWorkflowTaskMs += t - lastActivityCompletedAt;
        lastActivityCompletedAt = undefined;
        break;
      case EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        gaps.workflowTasks += 1;
        gaps.workflowTaskDispatchMs += t - (at.get(String(event.workflowTaskStartedEventAttributes?.scheduledEventId)) ?? t);
        break;
      case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        gaps.workflowTaskProcessingMs += t - (at.get(String(event.workflowTaskCompletedEventAttributes?.startedEventId)) ?? t);
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        typeOf.set(String(event.eventId), event.activityTaskScheduledEventAttributes?.activityType?.name ?? 'unknown');
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        gaps.activities += 1;
        const dispatch = t - (at.get(String(event.activityTaskStartedEventAttributes?.scheduledEventId)) ?? t);
        gaps.activityDispatchMs += dispatch;
        if (dispatch <= 2) gaps.eagerActivities += 1;
        break;
      }
      case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
        const attributes = event.activityTaskCompletedEventAttributes;
        const run = t - (at.get(String(attributes?.startedEventId)) ?? t);
        gaps.activityRunMs += run;
        const type = typeOf.get(String(attributes?.scheduledEventId)) ?? 'unknown';
        gaps.activityRunMsByType[type] = (gaps.activityRunMsByType[type] ?? 0) + run;
        lastActivityCompletedAt = t;
        break;
      }
      default:
        break;
    }
  }
  if (events.length > 0) gaps.workflowMs = ms(events[events.length - 1]!.eventTime) - ms(events[0]!.eventTime);
  return gaps;
}

/** The mean of each gap over several runs, rounded to 0.1 ms. */
export function meanGaps(all: HistoryGaps[]): HistoryGaps {
  const round = (value: number) => Math.round((value / Math.max(1, all.length)) * 10) / 10;
  const sum = (pick: (g: HistoryGaps) => number) => round(all.reduce((total, g) => total + pick(g), 0));
  const types = [...new Set(all.flatMap((g) => Object.keys(g.activityRunMsByType)))];
  return {
    workflowMs: sum((g) => g.workflowMs),
    workflowTaskDispatchMs: sum((g) => g.workflowTaskDispatchMs),
    workflowTaskProcessingMs: sum((g) => g.workflowTaskProcessingMs),
    activityDispatchMs: sum((g) => g.activityDispatchMs),
    activityRunMs: sum((g) => g.activityRunMs),
    activityToWorkflowTaskMs: sum((g) => g.activityToWorkflowTaskMs),
    workflowTasks: sum((g) => g.workflowTasks),
    activities: sum((g) => g.activities),
    eagerActivities: sum((g) => g.eagerActivities),
    activityRunMsByType: Object.fromEntries(types.map((type) => [type, sum((g) => g.activityRunMsByType[type] ?? 0)])),
  };
}
