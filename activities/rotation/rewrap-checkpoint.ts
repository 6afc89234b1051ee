import type { Curve } from '../../domain/curves';
import { emptyRotationCounts, type RewrapUsersInput, type RewrapUsersResult } from '../../contracts/rotate-keys-api';

/**
 * The checkpoint of one rewrapUsers activity, carried in every heartbeat so that a retried attempt
 * resumes where the last one was (`Context.current().info.heartbeatDetails`).
 *
 * Why one ciphertext is the unit of progress, not one user: a user's rewrap is about ten requests
 * to Portal and Vault (list the pairs, then per ciphertext: read, decrypt, rewrap, replace, read
 * back, decrypt). All or nothing over a user, a per-request fault rate of a few percent makes most
 * attempts over a few users fail and redo everything; checkpointed per ciphertext, a failed request
 * costs its own ciphertext's few requests again, and the users' listing is kept too. A user is
 * done (counted visited) when each of its ciphertexts is done: verified on the target version,
 * reported as failed for good, or found absent.
 *
 * What it holds, since heartbeat details go into history: user and pair ids, counters and failure
 * reasons (redacted, built from ids and status codes), and a time. No ciphertext, no plaintext or
 * its digest, no API key or token: a resumed ciphertext is read again from its store. A redo of a
 * ciphertext the checkpoint did not yet name (its write landed, the heartbeat did not) finds it on
 * the target version and verifies it as it is, so nothing is ever written twice.
 *
 * `progressAtMs` is when the checkpoint last moved: the retry pace (retryDelayAfterFailureMs in
 * contracts/step-timeouts.ts) slows to the outage pace only when it has not moved for a while.
 */
export interface RewrapCheckpoint {
  rotationId: string;
  userIds: string[];
  /** The user being rewrapped (an index into userIds). */
  next: number;
  /** Everything accounted for so far, the current user's done ciphertexts included. */
  result: RewrapUsersResult;
  /** The current user, once listed (absent in checkpoints written before per-ciphertext progress). */
  user?: UserCheckpoint;
  progressAtMs?: number;
}

/** The user at `next`: Portal's listing of its pairs (ids only) and the ciphertexts done. */
export interface UserCheckpoint {
  userId: string;
  clientId: string;
  /** `newest`: with copies only, a pair of the newest completed backup (whose missing copy is a failure: rewrap-copies.ts). */
  pairs: { pairId: string; curve: Curve; newest?: true }[];
  /** The keys (ciphertextKey) of the ciphertexts done. */
  done: string[];
}

/** A ciphertext's name in a checkpoint: its kind, pair and (custodian shares) backup method. */
export function ciphertextKey(entry: { kind: string; pairId: string; backupMethod?: string }): string {
  return entry.backupMethod === undefined ? `${entry.kind}:${entry.pairId}` : `${entry.kind}:${entry.backupMethod}:${entry.pairId}`;
}

/** The checkpoint to start from: the last heartbeat's when it is of this activity's input, else a fresh one. */
export function resumedCheckpoint(previous: unknown, input: RewrapUsersInput): RewrapCheckpoint {
  if (isCheckpoint(previous, input)) return previous;
  return { rotationId: input.rotationId, userIds: input.userIds, next: 0, result: { counts: emptyRotationCounts(), failures: [], deferred: [] } };
}

function isCheckpoint(value: unknown, input: RewrapUsersInput): value is RewrapCheckpoint {
  const checkpoint = value as Partial<RewrapCheckpoint> | undefined;
  return (
    checkpoint?.rotationId === input.rotationId &&
    Array.isArray(checkpoint.userIds) &&
    checkpoint.userIds.length === input.userIds.length &&
    checkpoint.userIds.every((id, index) => id === input.userIds[index]) &&
    typeof checkpoint.next === 'number' &&
    checkpoint.next >= 0 &&
    checkpoint.next <= input.userIds.length &&
    typeof checkpoint.result === 'object' &&
    (checkpoint.user === undefined || isUserCheckpoint(checkpoint.user, input.userIds[checkpoint.next]))
  );
}

function isUserCheckpoint(user: Partial<UserCheckpoint>, userId: string | undefined): boolean {
  return user.userId === userId && typeof user.clientId === 'string' && Array.isArray(user.pairs) && Array.isArray(user.done);
}
