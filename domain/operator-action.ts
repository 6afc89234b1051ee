/**
 * Signed operator actions: what an operator's act (start, approve, reject, retry or abandon a
 * recovery; retry or abandon a backup; pause, resume or cancel a fleet run; start a key rotation,
 * with or without the raise of the minimum version; request, approve or reject an eject) carries so that the workers know who did it. Anyone holding namespace access and the
 * codec key can send an update with any fields, so a name in an update proves nothing; a statement
 * of the exact act, signed with a Vault Transit key only that operator (or the HTTP API, for its
 * named tokens) may use, does. A worker verifies the signature (activities/approvals/) and checks
 * the operator is an approver; the workflow checks the statement names this very act on this very
 * run. The statement and its signature authenticate no one to anything else: they are bound to one
 * act on one run and expire within minutes. Deterministic and free of Node APIs (the workflow
 * imports it).
 */

export const OPERATOR_ACTION_KINDS = [
  'recover-start',
  'recover-approve',
  'recover-reject',
  'recover-retry',
  'recover-abandon',
  'backup-retry',
  'backup-abandon',
  'fleet-pause',
  'fleet-resume',
  'fleet-cancel',
  'rotation-start',
  'rotation-raise-min-version',
  'eject-request',
  'eject-approve',
  'eject-reject',
] as const;
export type OperatorActionKind = (typeof OPERATOR_ACTION_KINDS)[number];

/** The acts on a run of no one user (a batch, drill or rotation): their statements carry no userId. */
export const USERLESS_KINDS: readonly OperatorActionKind[] = ['fleet-pause', 'fleet-resume', 'fleet-cancel', 'rotation-start', 'rotation-raise-min-version'];

/** Whether statements of `kind` name a user (every per-user act) or none (fleet-run controls). */
export function namesUser(kind: OperatorActionKind): boolean {
  return !USERLESS_KINDS.includes(kind);
}

/** Who signed: the operator's own Transit key (`operator-<name>`), or the HTTP API's key for its named tokens. */
export type OperatorActionSigner = 'operator' | 'api';

export interface OperatorActionStatement {
  v: 1;
  kind: OperatorActionKind;
  /** The run's workflow id: `recover-<userId>`, `backup-<userId>`, `batch-<id>`, `drill-<id>`, `rotate-keys`. */
  workflowId: string;
  /** The run acted on; absent for a start (its run does not exist yet; `nonce` then makes it unique). */
  runId?: string;
  /** The user acted on; absent exactly for the kinds of USERLESS_KINDS. */
  userId?: string;
  /** The operator's name: `[a-z0-9][a-z0-9._-]*`, up to 64 characters. */
  operator: string;
  via: OperatorActionSigner;
  /** ISO time the client signed at; the workflow refuses statements older or newer than OPERATOR_ACTION_MAX_AGE_MS. */
  issuedAt: string;
  /** A rejection's or abandon's reason: signed too, so it cannot be swapped. */
  reason?: string;
  /**
   * An eject request's recipient: the requester's one-time X25519 public key (base64url, 32 bytes),
   * the only key the released shares are sealed to. Signed, so no one can swap in their own.
   */
  recipient?: string;
  /** Random, so two signed starts are never the same statement. */
  nonce: string;
}

/** A statement (its exact JSON text, as signed) and the Transit signature (`vault:v1:…`) over it. */
export interface SignedOperatorAction {
  statement: string;
  signature: string;
}

/** How far a statement's issuedAt may be from the workflow's clock. */
export const OPERATOR_ACTION_MAX_AGE_MS = 10 * 60_000;

const OPERATOR_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_STATEMENT_CHARS = 4_096;
const MAX_SIGNATURE_CHARS = 1_024;

/** Thrown for a signed action that is malformed or names another act; the message says what is wrong. */
export class OperatorActionInvalidError extends Error {
  override readonly name = 'OperatorActionInvalidError';
}

/** A one-time X25519 public key as an eject request names it: 32 bytes, base64url without padding. */
export function isRecipientKey(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(value);
}

export function isOperatorName(value: unknown): value is string {
  return typeof value === 'string' && OPERATOR_NAME.test(value);
}

/** The canonical text of a statement: fixed key order, optional fields only when present. */
export function statementText(statement: OperatorActionStatement): string {
  const { v, kind, workflowId, runId, userId, operator, via, issuedAt, reason, recipient, nonce } = statement;
  return JSON.stringify({
    v,
    kind,
    workflowId,
    ...(runId !== undefined ? { runId } : {}),
    ...(userId !== undefined ? { userId } : {}),
    operator,
    via,
    issuedAt,
    ...(reason !== undefined ? { reason } : {}),
    ...(recipient !== undefined ? { recipient } : {}),
    nonce,
  });
}

/** Parses a signed action as it arrived (hostile input): its statement, or OperatorActionInvalidError naming the problem. */
export function parseSignedAction(value: unknown): OperatorActionStatement {
  if (typeof value !== 'object' || value === null) throw new OperatorActionInvalidError('a signed operator action ({statement, signature}) is required');
  const { statement, signature } = value as Partial<SignedOperatorAction>;
  if (typeof statement !== 'string' || statement.length === 0 || statement.length > MAX_STATEMENT_CHARS) {
    throw new OperatorActionInvalidError(`statement must be a string of 1 to ${MAX_STATEMENT_CHARS} characters`);
  }
  if (typeof signature !== 'string' || !/^vault:v\d+:[A-Za-z0-9+/=]+$/.test(signature) || signature.length > MAX_SIGNATURE_CHARS) {
    throw new OperatorActionInvalidError('signature must be a Vault Transit signature (vault:v<n>:<base64>)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(statement);
  } catch {
    throw new OperatorActionInvalidError('statement is not JSON');
  }
  const fields = parsed as Partial<Record<keyof OperatorActionStatement, unknown>>;
  const problems = statementProblems(fields);
  if (problems.length > 0) throw new OperatorActionInvalidError(`statement: ${problems.join('; ')}`);
  const checked = fields as unknown as OperatorActionStatement;
  if (statementText(checked) !== statement) throw new OperatorActionInvalidError('statement is not in canonical form (fields, order or extra fields)');
  return checked;
}

function statementProblems(fields: Partial<Record<keyof OperatorActionStatement, unknown>>): string[] {
  const problems: string[] = [];
  const isText = (value: unknown, max: number) => typeof value === 'string' && value.length > 0 && value.length <= max;
  if (fields.v !== 1) problems.push('v must be 1');
  const knownKind = (OPERATOR_ACTION_KINDS as readonly unknown[]).includes(fields.kind);
  if (!knownKind) problems.push(`kind must be one of ${OPERATOR_ACTION_KINDS.join(', ')}`);
  if (!isText(fields.workflowId, 300)) problems.push('workflowId is required');
  if (fields.runId !== undefined && !isText(fields.runId, 100)) problems.push('runId must be a run id');
  if (knownKind && namesUser(fields.kind as OperatorActionKind) && !isText(fields.userId, 200)) problems.push('userId is required');
  if (knownKind && !namesUser(fields.kind as OperatorActionKind) && fields.userId !== undefined) problems.push(`a ${String(fields.kind)} names no user: leave userId out`);
  if (!isOperatorName(fields.operator)) problems.push('operator must be a name of [a-z0-9._-], up to 64 characters');
  if (fields.via !== 'operator' && fields.via !== 'api') problems.push('via must be operator or api');
  if (!isText(fields.issuedAt, 40) || Number.isNaN(Date.parse(fields.issuedAt as string))) problems.push('issuedAt must be an ISO time');
  if (fields.reason !== undefined && !isText(fields.reason, 1000)) problems.push('reason must be 1 to 1000 characters');
  if (fields.recipient !== undefined && !isRecipientKey(fields.recipient)) problems.push('recipient must be an X25519 public key (43 base64url characters)');
  if (!isText(fields.nonce, 100)) problems.push('nonce is required');
  return problems;
}

/** What the run expects a statement to name: this act, on this run, now. */
export interface ExpectedAction {
  kind: OperatorActionKind;
  workflowId: string;
  /** Absent for a start. */
  runId?: string;
  /** Absent for the kinds of USERLESS_KINDS. */
  userId?: string;
  nowMs: number;
}

/** Returns the statement when it names exactly the expected act, within the allowed age; else OperatorActionInvalidError. */
export function requireActionFor(value: unknown, expected: ExpectedAction): OperatorActionStatement {
  const statement = parseSignedAction(value);
  const problems: string[] = [];
  if (statement.kind !== expected.kind) problems.push(`it is a ${statement.kind}, not a ${expected.kind}`);
  if (statement.workflowId !== expected.workflowId) problems.push(`it names workflow ${statement.workflowId}, not ${expected.workflowId}`);
  if (expected.runId !== undefined && statement.runId !== expected.runId) problems.push(`it names run ${statement.runId ?? '(none)'}, not this run ${expected.runId}`);
  if (statement.userId !== expected.userId) problems.push(`it names user ${statement.userId ?? '(none)'}, not ${expected.userId ?? '(none)'}`);
  const ageMs = expected.nowMs - Date.parse(statement.issuedAt);
  if (Math.abs(ageMs) > OPERATOR_ACTION_MAX_AGE_MS) problems.push(`it was issued at ${statement.issuedAt}, more than ${OPERATOR_ACTION_MAX_AGE_MS / 60_000} minutes from now: sign it again`);
  if (problems.length > 0) throw new OperatorActionInvalidError(`the signed action is not for this act: ${problems.join('; ')}`);
  return statement;
}

/** The Transit key that signs an operator's statements (`operator-<name>`), or the API's. */
export function signingKeyOf(statement: Pick<OperatorActionStatement, 'via' | 'operator'>, keys: { operatorKeyPrefix: string; apiKey: string }): string {
  return statement.via === 'api' ? keys.apiKey : `${keys.operatorKeyPrefix}${statement.operator}`;
}
