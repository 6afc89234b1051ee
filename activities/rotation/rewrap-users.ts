import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { CURVES } from '../../domain/curves';
import { backupWorkflowId } from '../../domain/user-id';
import { newestPairIds } from '../../adapters/stores/stored-backup';
import {
  MAX_RECENT_ROTATION_FAILURES,
  type CiphertextCounts,
  type RewrapUsersInput,
  type RewrapUsersResult,
  type RotationFailure,
} from '../../contracts/rotate-keys-api';
import { temporalCall } from '../../adapters/temporal/temporal-error-classifier';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import { rotationStores, type KeyRotationDeps } from './key-rotation-deps';
import { ciphertextKey, type RewrapCheckpoint, type UserCheckpoint } from './rewrap-checkpoint';
import { rewrapCiphertext, type Found } from './rewrap-ciphertext';
import { copyKey, rewrapCopies, type CopyOutcome } from './rewrap-copies';
import { mustRetry, reasonOf } from './rotation-boundary';

/**
 * The rewrap step: every ciphertext of a few users, one user and one ciphertext at a time, from
 * the checkpoint the heartbeats carry (rewrap-checkpoint.ts). One ciphertext's rewrap is in
 * rewrap-ciphertext.ts; this file walks users, defers those whose backup still runs, and counts.
 */

const counterOf = (found: Found, result: RewrapUsersResult): CiphertextCounts =>
  found.kind === 'client-ciphertext' ? result.counts.clientCiphertexts : result.counts.custodianShares;

function recordFailure(result: RewrapUsersResult, failure: RotationFailure): void {
  result.failures.push(failure);
  if (result.failures.length > MAX_RECENT_ROTATION_FAILURES) result.failures.shift();
  Context.current().log.warn('key rotation failure', { ...failure });
}

/** Counts one ciphertext's outcome into the result (`store`: the copy's, when several stores keep copies). */
function account(userId: string, entry: Found, outcome: CopyOutcome, result: RewrapUsersResult, store?: string): void {
  const named = store === undefined ? {} : { store };
  if ('uncounted' in outcome) return;
  if ('absentElsewhere' in outcome) {
    result.counts.copiesAbsentElsewhere = (result.counts.copiesAbsentElsewhere ?? 0) + 1;
    Context.current().log.info('key rotation: a copy of a pair outside the newest completed backup is absent', { userId, pairId: entry.pairId, store });
    return;
  }
  if ('absent' in outcome) result.counts.pairsWithoutCiphertext += 1;
  else if ('missing' in outcome) {
    // A failure (it blocks the raise), counted also as what it is.
    result.counts.copiesMissing = (result.counts.copiesMissing ?? 0) + 1;
    counterOf(entry, result).failed += 1;
    recordFailure(result, { userId, pairId: entry.pairId, kind: entry.kind, ...named, reason: outcome.missing });
  } else if ('failed' in outcome) {
    counterOf(entry, result).failed += 1;
    recordFailure(result, { userId, pairId: entry.pairId, kind: entry.kind, ...named, reason: outcome.failed });
  } else {
    counterOf(entry, result)[outcome.verified] += 1;
    counterOf(entry, result).verified += 1;
  }
}

/** A user whose ciphertexts cannot be listed (a permanent error) is a user failure; a transient error retries. */
function failUser(userId: string, result: RewrapUsersResult, error: unknown): undefined {
  if (mustRetry(error)) throw error;
  result.counts.usersFailed += 1;
  recordFailure(result, { userId, kind: 'user', reason: `its ciphertexts could not be listed: ${reasonOf(error)}` });
  return undefined;
}

/** When the user's backup run is running, its start (ms); else undefined. */
function backupRunningSince(deps: KeyRotationDeps, userId: string): Promise<number | undefined> {
  return temporalCall(`checking the backup of ${userId}`, async () => {
    try {
      const description = await deps.temporal.workflow.getHandle(backupWorkflowId(userId)).describe();
      return description.status.name === 'RUNNING' ? description.startTime.getTime() : undefined;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  });
}

/**
 * Every backup share pair Portal lists for the user (any status), on the curves this service backs
 * up; with copies, the pairs of its newest completed backup are named (`newest`).
 */
async function listPairs(deps: KeyRotationDeps, userId: string): Promise<UserCheckpoint> {
  const { clientApiKey } = await deps.credentials.load(userId);
  const client = await deps.portal.getClient(clientApiKey);
  const newest = rotationStores(deps).length > 1 ? newestPairIds(userId, client) : undefined;
  const pairs: UserCheckpoint['pairs'] = [];
  for (const wallet of client.wallets) {
    const curve = CURVES.find((known) => known === wallet.curve.toUpperCase());
    if (!curve) continue; // a curve this service never backs up
    for (const pair of wallet.backupSharePairs) pairs.push({ pairId: pair.id, curve, ...(newest?.has(pair.id) ? { newest: true as const } : {}) });
  }
  return { userId, clientId: client.id, pairs, done: [] };
}

/** Starts a user: deferred when its pre-rotation backup still runs, else Portal's listing of its pairs (undefined when deferred or failed). */
async function startUser(deps: KeyRotationDeps, userId: string, input: RewrapUsersInput, result: RewrapUsersResult): Promise<UserCheckpoint | undefined> {
  const runningSince = await backupRunningSince(deps, userId);
  if (runningSince !== undefined && runningSince < input.rotatedAtMs) {
    // Between its store and its mark, a backup must find its ciphertext as it wrote it; and its
    // step-2 ciphertext, in history, is of the old version. Visit the user again once it is over.
    result.deferred.push(userId);
    result.counts.usersDeferred += 1;
    Context.current().log.info('key rotation defers a user whose backup is running', { rotationId: input.rotationId, userId });
    return undefined;
  }
  return listPairs(deps, userId).catch((error: unknown) => failUser(userId, result, error));
}

/** Whether the entry is done: with copies, a client ciphertext is done once each copy is. */
function isDone(deps: KeyRotationDeps, user: UserCheckpoint, entry: Found): boolean {
  const stores = rotationStores(deps);
  if (entry.kind !== 'client-ciphertext' || stores.length < 2) return user.done.includes(ciphertextKey(entry));
  return stores.every((store) => user.done.includes(copyKey(store.kind, entry.pairId)));
}

/** The user's ciphertexts not done yet: one per listed pair, and the custodian shares held for its client. */
async function ciphertextsLeft(deps: KeyRotationDeps, user: UserCheckpoint): Promise<Found[]> {
  const found: Found[] = user.pairs.map(({ pairId, curve, newest }) => ({ kind: 'client-ciphertext', pairId, curve, ...(newest ? { newest } : {}), context: transitContext(user.userId, pairId) }));
  for (const row of deps.custodianShares ? await deps.custodianShares.listByClient(user.clientId) : []) {
    found.push({
      kind: 'custodian-share',
      pairId: row.pairId,
      backupMethod: row.backupMethod,
      context: custodianShareContext(user.clientId, row.pairId),
      stored: row.encryptedShare,
      recordedSha256: row.shareSha256,
    });
  }
  return found.filter((entry) => !isDone(deps, user, entry));
}

/**
 * The user at the checkpoint, from where it stopped: started (and listed) once, then each
 * ciphertext not done yet; `moved` after each step saves the checkpoint. Synchronous between the
 * last request and `moved`, so a checkpoint never holds half of a ciphertext's outcome.
 */
async function rewrapUser(deps: KeyRotationDeps, input: RewrapUsersInput, checkpoint: RewrapCheckpoint, moved: () => void): Promise<void> {
  if (!checkpoint.user) {
    const started = await startUser(deps, input.userIds[checkpoint.next]!, input, checkpoint.result);
    if (!started) return;
    checkpoint.user = started;
    moved();
  }
  const user = checkpoint.user;
  const left = await ciphertextsLeft(deps, user).catch((error: unknown) => failUser(user.userId, checkpoint.result, error));
  if (!left) return;
  const stores = rotationStores(deps);
  for (const entry of left) {
    if (entry.kind === 'client-ciphertext' && stores.length > 1) {
      // Each copy is a step of its own: saved as soon as it is done.
      const copyDone = (store: string, outcome: CopyOutcome): void => {
        account(user.userId, entry, outcome, checkpoint.result, store);
        user.done.push(copyKey(store, entry.pairId));
        moved();
      };
      await rewrapCopies(deps, stores, user, entry, input.targetVersion, (store) => user.done.includes(copyKey(store, entry.pairId)), copyDone);
      continue;
    }
    const outcome = await rewrapCiphertext(deps, user, entry, input.targetVersion);
    account(user.userId, entry, outcome, checkpoint.result);
    user.done.push(ciphertextKey(entry));
    moved();
  }
  checkpoint.result.counts.usersVisited += 1;
}

/** Every user of the input from the checkpoint on; `moved` saves the checkpoint after each step. */
export async function rewrapUsers(deps: KeyRotationDeps, input: RewrapUsersInput, checkpoint: RewrapCheckpoint, moved: () => void): Promise<RewrapUsersResult> {
  while (checkpoint.next < input.userIds.length) {
    await rewrapUser(deps, input, checkpoint, moved);
    checkpoint.user = undefined;
    checkpoint.next += 1;
    moved();
  }
  const { counts } = checkpoint.result;
  Context.current().log.info('key rotation rewrapped users', {
    rotationId: input.rotationId,
    users: input.userIds.length,
    deferred: checkpoint.result.deferred.length,
    clientCiphertexts: counts.clientCiphertexts,
    custodianShares: counts.custodianShares,
  });
  return checkpoint.result;
}
