/**
 * The audit trail's event: one shape for every act that is recorded (a share released, a recovery
 * started or ended, an operator's retry or abandon, a key rotation, a minimum-version raise, a
 * fleet run paused, resumed or cancelled, an approval or rejection). Workflows, activities, the
 * eject path and the CLI import it from here; deterministic and free of Node APIs (workflows import
 * it). The chain that holds these events (hashes, seals) is in db/audit-chain.ts and
 * db/audit-trail.ts.
 */
import type { ActivityOptions } from '@temporalio/common';
import type { StepReceipt } from '../domain/step-receipt';

export const AUDIT_EVENT_KINDS = [
  'eject.released',
  'eject.refused',
  'eject.approved',
  'eject.rejected',
  'recovery.started',
  'recovery.completed',
  'recovery.failed',
  'recovery.cancelled',
  'recovery.retried',
  'recovery.abandoned',
  'recovery.approved',
  'recovery.rejected',
  'backup.retried',
  'backup.abandoned',
  'rotation.started',
  'rotation.key_rotated',
  'rotation.min_version_raised',
  'rotation.finished',
  'fleet.paused',
  'fleet.resumed',
  'fleet.cancelled',
  'copy.repaired',
] as const;

export type AuditEventKind = (typeof AUDIT_EVENT_KINDS)[number];

/** A value of an event's details: plain JSON (ids, counts, versions, reasons), never a secret. */
export type AuditDetailValue = string | number | boolean | null | AuditDetailValue[] | { [key: string]: AuditDetailValue };

/**
 * One act, as it is appended. `eventId` is deterministic (`auditEventId`), so an activity retried
 * after a lost response appends it once. `details` holds ids, counts, versions and reasons only:
 * no share, token, API key or secret (keys that name one are refused, see SECRET_DETAIL_KEY).
 */
export interface AuditEventInput {
  eventId: string;
  kind: AuditEventKind;
  /**
   * Who acted: today the free-text `--by`/requestedBy name, the caller's Vault display name for an
   * eject, or `UNIDENTIFIED_ACTOR` where the act carries no name (to be replaced by a verified
   * identity).
   */
  actor: string;
  userId?: string;
  /** What was acted on: a workflow id and run id (`<workflowId>/<runId>`), a batch, drill or rotation id. */
  subject: string;
  details: { [key: string]: AuditDetailValue };
}

/** One appended event, with its place in the chain. */
export interface AuditEvent extends AuditEventInput {
  /** The position in the chain (1, 2, …; the order of appends, not a count: rolled-back appends may leave gaps). */
  seq: number;
  /** When it was appended (ISO 8601, milliseconds). */
  at: string;
  prevHash: string;
  hash: string;
}

/** What the activity answers: whether this call appended the event or found it already there. */
export interface RecordAuditEventResult {
  eventId: string;
  /** false when the worker has no DATABASE_URL: the audit trail is off (the worker warned at start). */
  recorded: boolean;
  alreadyRecorded: boolean;
  seq?: number;
  /**
   * A worker's receipt (claims: the event id) that this very append ran: the workflow checks it in a
   * local activity and appends again without one, so an activity completed by id from outside
   * cannot leave an act without its row (AUDIT_RECEIPTS_PATCH).
   */
  receipt?: StepReceipt;
}

/** The patch id of the receipt check after each append (docs/changing-workflows.md). */
export const AUDIT_RECEIPTS_PATCH = 'audit-receipts';

/** The facts an append's receipt vouches for. */
export function auditReceiptClaims(eventId: string): { eventId: string } {
  return { eventId };
}

/** The actor of an act that carries no name yet (fleet-run controls, a recovery start). */
export const UNIDENTIFIED_ACTOR = 'unidentified';

/** The patch id of the workflow code that records audit events (docs/changing-workflows.md). */
export const AUDIT_EVENTS_PATCH = 'audit-events';
/** The patch id of `recovery.cancelled`, added after the fixtures of AUDIT_EVENTS_PATCH were recorded. */
export const AUDIT_RECOVERY_CANCELLED_PATCH = 'audit-recovery-cancelled';
/** Guards the approval and rejection events of a recovery's APPROVAL step (runs recorded with approvals but before these events replay without them). */
export const AUDIT_APPROVALS_PATCH = 'audit-approvals';

/** Detail keys that name a secret: an event carrying one is refused, never written. */
export const SECRET_DETAIL_KEY = /shares?$|token|secret|password|api[-_]?key|plaintext|credential|private/i;

/**
 * The deterministic id of an act: the run it belongs to, its kind and the act's own sequence (an
 * update's id, a step's name). The same act asked again (an activity retry, a replay) gets the same id.
 */
export function auditEventId(parts: { workflowId: string; runId: string; kind: AuditEventKind; act?: string }): string {
  return [parts.workflowId, parts.runId, parts.kind, ...(parts.act ? [parts.act] : [])].join('/');
}

/**
 * The activity's timing: each attempt is one short transaction; retried without end (an event is
 * never dropped), backing off to a minute while the database is down. Changing a value changes new
 * commands only (recorded histories replay).
 */
export const AUDIT_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  // A worker that died mid-append is noticed in 10 s, and another runs it.
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
};
