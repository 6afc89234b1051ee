/**
 * Records a workflow's acts in the audit trail (contracts/audit-events.ts) through the
 * `recordAuditEvent` activity, scheduled in the same workflow task as the act: a worker killed in
 * between leaves the activity scheduled (it runs on another worker), and its deterministic event id
 * makes a retried append a no-op. Runs whose history predates this code replay without it
 * (`patched(AUDIT_EVENTS_PATCH)`), so recorded histories and parked runs moved to a new build still
 * replay (docs/changing-workflows.md).
 */
import { currentUpdateInfo, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AuditActivities } from '../activities/audit/audit-activities';
import { refusedReceipts } from './receipt-checks';
import {
  AUDIT_ACTIVITY_OPTIONS,
  AUDIT_EVENTS_PATCH,
  AUDIT_RECEIPTS_PATCH,
  auditReceiptClaims,
  auditEventId,
  UNIDENTIFIED_ACTOR,
  type AuditDetailValue,
  type AuditEventKind,
} from '../contracts/audit-events';

const audit = proxyActivities<AuditActivities>(AUDIT_ACTIVITY_OPTIONS);

export interface AuditAct {
  /** Who acted (the operator's name); UNIDENTIFIED_ACTOR when the act carries none. */
  actor?: string | undefined;
  userId?: string;
  details?: { [key: string]: AuditDetailValue };
  /**
   * The act's own id within the run, when the run may do this kind of act more than once. Default:
   * the id of the update being handled (retry, abandon, pause, …), else none (a once-per-run act).
   */
  act?: string;
  /** The run the act belongs to (default this run; a fleet run's acts across continue-as-new use its first run). */
  runId?: string;
  /**
   * The patch id that guards this call (default AUDIT_EVENTS_PATCH). A call added later where
   * recorded histories have none needs an id of its own (docs/changing-workflows.md).
   */
  patch?: string;
}

/** Appends `kind` to the audit trail and waits until it is recorded (or does nothing in a run from before the audit). */
export async function recordAct(kind: AuditEventKind, act: AuditAct = {}): Promise<void> {
  if (!patched(act.patch ?? AUDIT_EVENTS_PATCH)) return;
  const info = workflowInfo();
  const runId = act.runId ?? info.runId;
  const actId = act.act ?? currentUpdateInfo()?.id;
  const event = {
    eventId: auditEventId({ workflowId: info.workflowId, runId, kind, ...(actId ? { act: actId } : {}) }),
    kind,
    actor: act.actor?.trim() || UNIDENTIFIED_ACTOR,
    ...(act.userId ? { userId: act.userId } : {}),
    subject: `${info.workflowId}/${runId}`,
    details: act.details ?? {},
  };
  for (;;) {
    const result = await audit.recordAuditEvent(event);
    // Runs recorded before receipts took the activity's answer as it came.
    if (!patched(AUDIT_RECEIPTS_PATCH)) return;
    const [refused] = await refusedReceipts([{ step: 'AUDIT_EVENT', claims: auditReceiptClaims(event.eventId), receipt: (result as { receipt?: unknown } | undefined)?.receipt }]);
    if (!refused) return;
    // Completed from outside (or by a worker from before receipts): append again; the event id makes a real append once.
    log.warn('an audit append answered without a worker\'s receipt: appending again', { kind, eventId: event.eventId });
  }
}
