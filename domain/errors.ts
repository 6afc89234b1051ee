import type { ReceiptStep } from './step-receipt';

/**
 * Domain errors. Each names what went wrong and what to fix; `retryable` drives the Temporal retry
 * policy (activities turn these into ApplicationFailures of the same type name). Messages never
 * carry shares, API keys or tokens: build them from status codes and ids only.
 */
export abstract class BackupDomainError extends Error {
  abstract readonly retryable: boolean;
  /** A server-requested delay (Retry-After) before the next attempt, if any. */
  readonly retryAfterMs?: number;

  /** Facts for the workflow (no secrets), carried as the failure's details. */
  readonly details?: unknown[];

  constructor(message: string, options: { retryAfterMs?: number; details?: unknown[] } = {}) {
    super(message);
    this.name = new.target.name;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** Network error, timeout, 408 or 5xx from Portal: try again with backoff. */
export class PortalUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** 429 from Portal; `retryAfterMs` is set when Portal sent Retry-After. */
export class PortalRateLimitedError extends BackupDomainError {
  readonly retryable = true;
}

/**
 * No slot of the shared Portal rate limit came free in time in this worker (too many requests
 * waiting): nothing was sent to Portal; try again with backoff.
 */
export class PortalRateLimitBusyError extends BackupDomainError {
  readonly retryable = true;
}

/** 401/403: the client API key is missing, malformed, revoked or lacks access. */
export class PortalAuthError extends BackupDomainError {
  readonly retryable = false;
}

/** 404: the pair, client or route does not exist at Portal. */
export class PortalNotFoundError extends BackupDomainError {
  readonly retryable = false;
}

/** 400/422 or another 4xx: Portal rejected the request as malformed. */
export class PortalRequestRejectedError extends BackupDomainError {
  readonly retryable = false;
}

/** Portal answered 2xx with a body that breaks the documented contract. */
export class PortalContractError extends BackupDomainError {
  readonly retryable = false;
}

/** Vault is unreachable, sealed, overloaded or timed out. */
export class VaultUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** Vault refused the token even after one re-authentication. */
export class VaultPermissionError extends BackupDomainError {
  readonly retryable = false;
}

/** Vault rejected the request (400: missing key, wrong context, bad ciphertext). */
export class VaultRequestError extends BackupDomainError {
  readonly retryable = false;
}

/** Vault answered 2xx with a body we cannot use. */
export class VaultContractError extends BackupDomainError {
  readonly retryable = false;
}

/** AWS KMS is unreachable, throttling, or failed inside (5xx, KMSInternalException, DependencyTimeoutException). */
export class KmsUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** AWS KMS refused the caller (AccessDeniedException, bad or expired credentials). */
export class KmsPermissionError extends BackupDomainError {
  readonly retryable = false;
}

/** AWS KMS rejected the request (no such key or alias, a key in the wrong state, a malformed request). */
export class KmsRequestError extends BackupDomainError {
  readonly retryable = false;
}

/** AWS KMS answered with something the envelope cannot use (no data key, another key than asked for). */
export class KmsContractError extends BackupDomainError {
  readonly retryable = false;
}

/** The credentials source knows no such user. */
export class UnknownUserError extends BackupDomainError {
  readonly retryable = false;
}

/** The credentials source failed transiently (network, 5xx). */
export class CredentialsUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** The credentials source answered with something that is not a usable credential record. */
export class CredentialsInvalidError extends BackupDomainError {
  readonly retryable = false;
}

/** The stored ciphertext read back differs from what was written, or does not decrypt to it. */
export class CiphertextVerificationError extends BackupDomainError {
  readonly retryable = false;
}

/** A ciphertext store has nothing for the pair (each store maps its own "not found" to this). */
export class CiphertextNotFoundError extends BackupDomainError {
  readonly retryable = false;
}

/** A ciphertext store already holds a different ciphertext for the pair; nothing was overwritten. */
export class CiphertextConflictError extends BackupDomainError {
  readonly retryable = false;
}

/**
 * CIPHERTEXT_STORES: one store's existing copy of a pair holds a different ciphertext than the other
 * copies get; nothing was overwritten and the pair stays unmarked (the message names the store).
 */
export class CiphertextCopyDivergesError extends BackupDomainError {
  readonly retryable = false;
}

/** A ciphertext store (the company's database or endpoint) failed transiently. */
export class CiphertextStoreUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** A ciphertext store refused the request or answered with something unusable. */
export class CiphertextStoreRequestError extends BackupDomainError {
  readonly retryable = false;
}

/** The ciphertext just stored stays unreadable (404) after several read-backs: the store lost or never kept it. */
export class CiphertextNotReadableError extends BackupDomainError {
  readonly retryable = false;
}

/** The sealed shares in history do not open: a sealing key is missing from the workers, or the box was altered. */
export class SealedSharesError extends BackupDomainError {
  readonly retryable = false;
}

/**
 * Vault refuses the workers' token (403) when step 1 checks it: a condition of the whole service.
 * Retryable: backups wait at step 1, making nothing at Portal, until the token or policy is fixed.
 */
export class VaultAccessDeniedError extends BackupDomainError {
  readonly retryable = true;
}

/** A batch's, drill's or rotation's user source refused a page for good (4xx, or a page that breaks its contract). */
export class UserSourceRefusedError extends BackupDomainError {
  readonly retryable = false;
}

/** The user source is unreachable or answered 5xx/429, or with a body that is not JSON: try again. */
export class UserSourceUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/**
 * A backup or recovery runs under a workflow id that is not its user's (`backup-<userId>`,
 * `recover-<userId>`): it would slip past the one-run-per-user guard and the rotation's deferral.
 * Refused at the run's first step, before anything is asked of Portal.
 */
export class WorkflowIdMismatchError extends BackupDomainError {
  readonly retryable = false;
}

/**
 * A step's result carries no valid receipt (activities/step-receipts.ts): it was completed from
 * outside the workers or altered. Nothing was done with it; the run parks and an operator's retry
 * runs `redoStep` again. The failure's details say which step: `[{ redoStep }]`.
 */
export class StepReceiptInvalidError extends BackupDomainError {
  readonly retryable = false;

  constructor(
    message: string,
    readonly redoStep: ReceiptStep,
  ) {
    super(message, { details: [{ redoStep }] });
  }
}

/** The Temporal service did not answer a call an activity made (unavailable, deadline, overloaded). */
export class TemporalUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** A batch named a user source the workers are not configured to call (BATCH_SOURCE_ALLOWED_ORIGINS). */
export class BatchSourceNotAllowedError extends BackupDomainError {
  readonly retryable = false;
}

/** The configured BACKUP_MODE disagrees with Portal's environment (backupWithPortalEnabled). */
export class BackupModeMismatchError extends BackupDomainError {
  readonly retryable = false;
}

/** Self-Managed: the company does not hold (yet) the custodian share of a pair about to be marked. */
export class CustodianShareNotYetStoredError extends BackupDomainError {
  readonly retryable = true;
}

/** Self-Managed: the custodian share of a pair never arrived, or does not decrypt: the pair must not be marked. */
export class CustodianShareMissingError extends BackupDomainError {
  readonly retryable = false;
}

/** The user has no completed backup to restore from (no pair per curve marked completed at Portal). */
export class NoCompletedBackupError extends BackupDomainError {
  readonly retryable = false;
}

/**
 * A stored backup decrypts, but not to Portal's `{id, share}` object of its own pair (altered,
 * stored under another pair, or written by something else): it cannot restore the wallet.
 */
export class StoredBackupInvalidError extends BackupDomainError {
  readonly retryable = false;
}

/**
 * A stored ciphertext is of a key version below the key's min_decryption_version: a key rotation
 * rewrapped it after it was read (read it again), or is rewrapping it now. Retryable: the next
 * attempt reads the store again. If it lasts after the rotation has ended, the rotation did not
 * cover this user: rewrap it (`keys rotate --no-rotate --users <userId>`).
 */
export class CiphertextBeingRewrappedError extends BackupDomainError {
  readonly retryable = true;
}

/** The user's backup is running and a recovery waits for it, or the other way round. */
export class UserRunInProgressError extends BackupDomainError {
  readonly retryable = true;
}

/** The user's backup or recovery is parked as NEEDS_ATTENTION: an operator must retry or abandon it first. */
export class OtherRunParkedError extends BackupDomainError {
  readonly retryable = false;
}

/** The company's backend did not take the new signing shares (network, timeout, 5xx, 429). */
export class SigningShareHandoverUnavailableError extends BackupDomainError {
  readonly retryable = true;
}

/** Recovery cannot run on these workers: SIGNING_SHARES_URL (where new signing shares go) is not set. */
export class RecoveryNotConfiguredError extends BackupDomainError {
  readonly retryable = false;
}

/** The company's backend refused the new signing shares (4xx): fix the backend, then retry the recovery. */
export class SigningShareHandoverRejectedError extends BackupDomainError {
  readonly retryable = false;
}

/**
 * The ciphertext store cannot replace a stored ciphertext safely (a key rotation's rewrap): e.g. the
 * company endpoint keeps one record per user, where a write could clobber a newer backup's record.
 */
export class CiphertextReplaceUnsupportedError extends BackupDomainError {
  readonly retryable = false;
}

/** Names of the errors that must not be retried blindly; the workflow's retry policies list them. */
export const PERMANENT_ERROR_TYPES = [
  'PortalAuthError',
  'PortalNotFoundError',
  'PortalRequestRejectedError',
  'PortalContractError',
  'VaultPermissionError',
  'VaultRequestError',
  'VaultContractError',
  'KmsPermissionError',
  'KmsRequestError',
  'KmsContractError',
  'UnknownUserError',
  'CredentialsInvalidError',
  'CiphertextVerificationError',
  'CiphertextNotReadableError',
  'CiphertextNotFoundError',
  'CiphertextConflictError',
  'CiphertextCopyDivergesError',
  'CiphertextStoreRequestError',
  'CiphertextReplaceUnsupportedError',
  'SealedSharesError',
  'BackupModeMismatchError',
  'DatabaseRequestError',
  'CustodianShareMissingError',
  'BatchSourceNotAllowedError',
  'NoCompletedBackupError',
  'StoredBackupInvalidError',
  'OtherRunParkedError',
  'SigningShareHandoverRejectedError',
  'RecoveryNotConfiguredError',
  'WorkflowIdMismatchError',
  'UserSourceRefusedError',
  'StepReceiptInvalidError',
  'OperatorNotVerifiedError',
  'OperatorNotApproverError',
  'ApprovalsNotConfiguredError',
  'EjectNotConfiguredError',
  'UnexpectedError',
] as const;

/** A signed operator action whose signature is not the named operator's (or the API's), or that is not for this act: sign it again with your own key. */
export class OperatorNotVerifiedError extends BackupDomainError {
  readonly retryable = false;
}

/** A verified operator who is not in the approvers set (RECOVERY_APPROVERS) tried to approve, reject, retry or abandon. */
export class OperatorNotApproverError extends BackupDomainError {
  readonly retryable = false;
}

/** Recovery approvals cannot be checked on these workers: RECOVERY_APPROVERS (or Vault for the signatures) is not configured. */
export class ApprovalsNotConfiguredError extends BackupDomainError {
  readonly retryable = false;
}

/** Eject cannot release on these workers: they have no company database (DATABASE_URL) to record and hold the release in. */
export class EjectNotConfiguredError extends BackupDomainError {
  readonly retryable = false;
}
