import type { AuditEventInput } from '../../contracts/audit-events';
import { activityBoundary } from '../activity-boundary';
import { recordAuditEvent, type AuditActivityDeps } from './record-audit-event';

export type { AuditActivityDeps } from './record-audit-event';

/** The audit trail's one activity, inside the activity boundary like every step. */
export function createAuditActivities(deps: AuditActivityDeps) {
  return {
    /** Appends one act to the hash-chained audit trail, once per event id. */
    recordAuditEvent: (event: AuditEventInput) => activityBoundary(deps.heartbeatIntervalMs, () => recordAuditEvent(deps, event)),
  };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
