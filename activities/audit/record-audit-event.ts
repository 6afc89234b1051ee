import { log } from '@temporalio/activity';
import { auditReceiptClaims, type AuditEventInput, type RecordAuditEventResult } from '../../contracts/audit-events';
import type { AuditTrail } from '../../db/audit-trail';
import { currentRun } from '../backup/backup-receipts';
import type { StepReceipts } from '../step-receipts';

export interface AuditActivityDeps {
  /** The company database's audit trail; absent when the worker has no DATABASE_URL (the trail is off). */
  auditTrail?: Pick<AuditTrail, 'append'>;
  heartbeatIntervalMs: number;
  /** Vouches for each append (the workflow checks it: a result completed from outside has none). */
  receipts: Pick<StepReceipts, 'issue'>;
}

/**
 * Appends one act to the audit trail (audit_events). The workflow schedules it in the same workflow
 * task as the act itself, so a worker killed between the two leaves the activity scheduled: another
 * worker runs it. Retrying is safe: the event id is the act's own (contracts/audit-events.ts
 * auditEventId), and an id already in the chain is not appended again, so an attempt whose commit
 * succeeded but whose answer was lost appends nothing the second time. A database that is down is
 * retryable (the workflow retries without end, an event is never dropped); an event the trail
 * refuses (a detail that names a secret, a malformed id) is a bug in the caller: non-retryable.
 */
export async function recordAuditEvent(deps: AuditActivityDeps, event: AuditEventInput): Promise<RecordAuditEventResult> {
  const receipt = () => deps.receipts.issue('AUDIT_EVENT', currentRun(), auditReceiptClaims(event.eventId));
  if (!deps.auditTrail) {
    log.warn('audit event not recorded: this worker has no DATABASE_URL, so the audit trail is off', { kind: event.kind, eventId: event.eventId });
    return { eventId: event.eventId, recorded: false, alreadyRecorded: false, receipt: receipt() };
  }
  const outcome = await deps.auditTrail.append(event);
  return { eventId: event.eventId, recorded: true, alreadyRecorded: outcome.alreadyRecorded, seq: outcome.seq, receipt: receipt() };
}
