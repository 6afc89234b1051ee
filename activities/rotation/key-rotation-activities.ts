import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { CustodianShareRepository } from '../../db/custodian-share-repository';
import { countBelowVersion } from '../../db/transit-version-census';
import type { StepReceipt } from '../../domain/step-receipt';
import { currentRun } from '../backup/backup-receipts';
import { censusClaims } from './rotation-census';
import type { StepReceipts } from '../step-receipts';
import { CURVES, type Curve } from '../../domain/curves';
import {
  CiphertextNotFoundError,
  CiphertextReplaceUnsupportedError,
  StepReceiptInvalidError,
  VaultRequestError,
} from '../../domain/errors';
import { backupWorkflowId } from '../../domain/user-id';
import {
  MAX_RECENT_ROTATION_FAILURES,
  type CiphertextCounts,
  type RewrapUsersInput,
  type RewrapUsersResult,
  type RotationCensus,
  type RotationFailure,
} from '../../contracts/rotate-keys-api';
import { checkpointedBoundary, mustRetry, plainBoundary, reasonOf } from './rotation-boundary';
import { ciphertextKey, resumedCheckpoint, type RewrapCheckpoint, type UserCheckpoint } from './rewrap-checkpoint';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClient } from '../../adapters/portal/portal-client';
import { temporalCall } from '../../adapters/temporal/temporal-error-classifier';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import { ciphertextVersion } from '../../adapters/kms/kms-ciphertext';
import type { KmsProvider } from '../../adapters/kms/kms-provider';

/**
 * What a key rotation needs, as narrow as it can be: the worker passes its activity deps, a
 * Temporal client and the database; tests pass real adapters (or wrappers around them).
 */
export interface KeyRotationDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  transit: Pick<KmsProvider, 'keyName' | 'keyVersions' | 'rotateKey' | 'rewrapEach' | 'decryptEach' | 'setMinDecryptionVersion'>;
  store: Pick<CiphertextStore, 'kind' | 'get' | 'replace' | 'replaceUnsupported'>;
  /** Self-Managed: the custodian shares the webhook holds (rewrapped too). */
  custodianShares?: Pick<CustodianShareRepository, 'listByClient' | 'getByPair' | 'replaceIfUnchanged'>;
  /** Looks at users' backup runs (a running pre-rotation backup defers its user) and lists running ones. */
  temporal: Pick<Client, 'workflow' | 'workflowService' | 'options'>;
  /** The company's database, when the store or the mode uses it: checked for stale rows before the raise. */
  database?: Pool;
  /** The census's and the check's receipts: the raise acts only on a check made by a worker of this run. */
  receipts: StepReceipts;
  heartbeatIntervalMs: number;
}

export interface TransitKeyState {
  keyName: string;
  latestVersion: number;
  minDecryptionVersion: number;
  storeKind: string;
  custodianShares: boolean;
}

/** What stands in the way of raising min_decryption_version; empty when nothing does, and then the receipt (RAISE_CHECK) the raise asks for. */
export interface RaiseCheck {
  reasons: string[];
  receipt?: StepReceipt;
}

export interface RaiseCheckInput {
  rotationId: string;
  targetVersion: number;
  rotatedAtMs: number;
  backupTaskQueue?: string;
  everyUser?: boolean;
  /** The census (rotation-census.ts) of a store that cannot be listed: its counts and receipt. */
  census?: Pick<RotationCensus, 'usersCounted' | 'ciphertextsCounted' | 'receipt'>;
}

/** What the check's receipt vouches for: nothing stands in the way of raising this rotation's key to this version. */
const raiseClaims = (rotationId: string, version: number) => ({ rotationId, targetVersion: String(version), verdict: 'nothing-in-the-way' });

/** One ciphertext of a user, as listed before its rewrap. */
interface Found {
  kind: 'client-ciphertext' | 'custodian-share';
  pairId: string;
  curve?: Curve;
  backupMethod?: string;
  context: string;
  /** Custodian shares: the ciphertext as listed (client ciphertexts are read from their store, one at a time). */
  stored?: string;
  /** Custodian shares: the SHA-256 the webhook recorded of the share Portal sent. */
  recordedSha256?: string;
}

/** What became of one ciphertext: verified on the target version, reported and left as it is, or absent from the store. */
type CiphertextOutcome = { verified: 'rewrapped' | 'alreadyCurrent' } | { failed: string } | { absent: true };

/** A ciphertext that is reported and left as it is (the reason says why); the rewrap goes on with the next one. */
class LeftAsIs extends Error {}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Runs one request of a ciphertext's rewrap: a transient error retries the activity, a permanent one leaves the ciphertext as it is. */
async function request<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (mustRetry(error)) throw error;
    throw new LeftAsIs(`${what}: ${reasonOf(error)}`);
  }
}

/**
 * Why the check does not take the census's word, if it does not: none was made, or its receipt is
 * not a worker's of this run for these counts and version (the census reads every ciphertext of
 * the source itself: activities/rotation/rotation-census.ts).
 */
function censusRefusalOf(receipts: StepReceipts, input: RaiseCheckInput): string | undefined {
  if (!input.census) return 'no census of the store was made: every stored ciphertext of the source must be read on the new version first';
  try {
    receipts.verify('ROTATION_CENSUS', currentRun(), censusClaims({ rotationId: input.rotationId, targetVersion: input.targetVersion }, input.census), input.census.receipt);
    return undefined;
  } catch (error) {
    if (error instanceof StepReceiptInvalidError) return `the census of the store is not a worker's: ${error.message}`;
    throw error;
  }
}

/**
 * The activities of key rotation (workflows/rotate-keys.ts): read and rotate the Transit key,
 * rewrap every ciphertext of a few users at a time, check and raise min_decryption_version.
 * Plaintexts exist only inside rewrapUsers, as Buffers hashed and zeroed at once; what leaves an
 * activity is versions, counts, ids and reasons.
 */
export function createKeyRotationActivities(deps: KeyRotationDeps) {
  const counterOf = (found: Found, result: RewrapUsersResult): CiphertextCounts =>
    found.kind === 'client-ciphertext' ? result.counts.clientCiphertexts : result.counts.custodianShares;

  const recordFailure = (result: RewrapUsersResult, failure: RotationFailure): void => {
    result.failures.push(failure);
    if (result.failures.length > MAX_RECENT_ROTATION_FAILURES) result.failures.shift();
    Context.current().log.warn('key rotation failure', { ...failure });
  };

  const failFound = (userId: string, found: Found, result: RewrapUsersResult, reason: string): void => {
    counterOf(found, result).failed += 1;
    recordFailure(result, { userId, pairId: found.pairId, kind: found.kind, reason });
  };

  /** When the user's backup run is running, its start (ms); else undefined. */
  const backupRunningSince = (userId: string): Promise<number | undefined> =>
    temporalCall(`checking the backup of ${userId}`, async () => {
      try {
        const description = await deps.temporal.workflow.getHandle(backupWorkflowId(userId)).describe();
        return description.status.name === 'RUNNING' ? description.startTime.getTime() : undefined;
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return undefined;
        throw error;
      }
    });

  /** Starts a user: deferred when its pre-rotation backup still runs, else Portal's listing of its pairs (undefined when deferred or failed). */
  const startUser = async (userId: string, input: RewrapUsersInput, result: RewrapUsersResult): Promise<UserCheckpoint | undefined> => {
    const runningSince = await backupRunningSince(userId);
    if (runningSince !== undefined && runningSince < input.rotatedAtMs) {
      // Between its store and its mark, a backup must find its ciphertext as it wrote it; and its
      // step-2 ciphertext, in history, is of the old version. Visit the user again once it is over.
      result.deferred.push(userId);
      result.counts.usersDeferred += 1;
      Context.current().log.info('key rotation defers a user whose backup is running', { rotationId: input.rotationId, userId });
      return undefined;
    }
    return listPairs(userId).catch((error: unknown) => failUser(userId, result, error));
  };

  /** A user whose ciphertexts cannot be listed (a permanent error) is a user failure; a transient error retries. */
  const failUser = (userId: string, result: RewrapUsersResult, error: unknown): undefined => {
    if (mustRetry(error)) throw error;
    result.counts.usersFailed += 1;
    recordFailure(result, { userId, kind: 'user', reason: `its ciphertexts could not be listed: ${reasonOf(error)}` });
    return undefined;
  };

  /** Every backup share pair Portal lists for the user (any status), on the curves this service backs up. */
  const listPairs = async (userId: string): Promise<UserCheckpoint> => {
    const { clientApiKey } = await deps.credentials.load(userId);
    const client = await deps.portal.getClient(clientApiKey);
    const pairs: UserCheckpoint['pairs'] = [];
    for (const wallet of client.wallets) {
      const curve = CURVES.find((known) => known === wallet.curve.toUpperCase());
      if (!curve) continue; // a curve this service never backs up
      for (const pair of wallet.backupSharePairs) pairs.push({ pairId: pair.id, curve });
    }
    return { userId, clientId: client.id, pairs, done: [] };
  };

  /** The user's ciphertexts not done yet: one per listed pair, and the custodian shares held for its client. */
  const ciphertextsLeft = async (user: UserCheckpoint): Promise<Found[]> => {
    const found: Found[] = user.pairs.map(({ pairId, curve }) => ({ kind: 'client-ciphertext', pairId, curve, context: transitContext(user.userId, pairId) }));
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
    return found.filter((entry) => !user.done.includes(ciphertextKey(entry)));
  };

  /** The ciphertext stored now, or undefined when there is none. */
  const readStored = async (userId: string, clientId: string, entry: Found): Promise<string | undefined> => {
    if (entry.kind === 'client-ciphertext') {
      try {
        return await deps.store.get({ userId }, entry.pairId, entry.curve!);
      } catch (error) {
        if (error instanceof CiphertextNotFoundError) return undefined;
        throw error;
      }
    }
    return (await deps.custodianShares!.getByPair(clientId, entry.pairId)).find((row) => row.backupMethod === entry.backupMethod)?.encryptedShare;
  };

  /** The SHA-256 of what `ciphertext` decrypts to in the entry's context (the plaintext is zeroed at once). */
  const digestOf = async (entry: Found, ciphertext: string, ifNot: string): Promise<string> => {
    const [outcome] = await deps.transit.decryptEach([{ ciphertext, context: entry.context }]);
    if (!outcome || 'error' in outcome) throw new LeftAsIs(`${ifNot}: ${outcome?.error ?? 'no result'}`);
    const digest = sha256Hex(outcome.plaintext);
    outcome.plaintext.fill(0);
    return digest;
  };

  /** Vault's rewrap of one ciphertext, checked to be of the target version. */
  const rewrapTo = async (entry: Found, stored: string, targetVersion: number): Promise<string> => {
    const [outcome] = await deps.transit.rewrapEach([{ ciphertext: stored, context: entry.context }], targetVersion);
    if (!outcome || 'error' in outcome) throw new LeftAsIs(`Vault could not rewrap it: ${outcome?.error ?? 'no result'}`);
    const version = ciphertextVersion(outcome.ciphertext);
    if (version !== targetVersion) throw new LeftAsIs(`Vault rewrapped it to version ${version ?? '?'}, not ${targetVersion}; not written`);
    return outcome.ciphertext;
  };

  /** Compare-and-set of one ciphertext in its store. 'changed': another writer (an earlier attempt of this rotation) was first; the read-back decides. */
  const replace = async (userId: string, clientId: string, entry: Found, old: string, next: string): Promise<'replaced' | 'changed' | 'absent'> => {
    if (entry.kind === 'client-ciphertext') {
      if (!deps.store.replace) throw new CiphertextReplaceUnsupportedError(`the ${deps.store.kind} store cannot replace a ciphertext`);
      return deps.store.replace({ userId }, { curve: entry.curve!, pairId: entry.pairId, ciphertext: next }, old);
    }
    const custodian = deps.custodianShares!;
    if (await custodian.replaceIfUnchanged(clientId, entry.backupMethod!, entry.pairId, old, next)) return 'replaced';
    const now = await readStored(userId, clientId, entry);
    if (now === undefined) return 'absent';
    return now === next ? 'replaced' : 'changed';
  };

  /** Reads the rewrapped ciphertext back, checks its version, decrypts it and compares the digest with the one it replaced. */
  const verifyReadBack = async (userId: string, clientId: string, entry: Found, old: { stored: string; sha256: string }, targetVersion: number): Promise<void> => {
    const stored = await request('could not be read back', () => readStored(userId, clientId, entry));
    if (stored === undefined) throw new LeftAsIs('is gone from its store after the rewrap');
    const version = ciphertextVersion(stored) ?? 0;
    if (version < targetVersion) {
      throw new LeftAsIs(stored === old.stored ? 'still holds the old ciphertext: another writer changed it in between' : `holds a ciphertext of version ${version || '?'} after the rewrap`);
    }
    const digest = await digestOf(entry, stored, 'the rewrapped ciphertext read back does not decrypt in its context');
    if (digest !== old.sha256) throw new LeftAsIs('the rewrapped ciphertext read back does not decrypt to the same bytes as the one it replaced');
  };

  /**
   * One ciphertext, start to end: read it, decrypt it in its context (its digest is what the
   * rewrapped one must decrypt to), and unless it is on the target version already, rewrap it,
   * write it back if unchanged, read it back and verify it. Transient errors throw (the activity
   * retries and resumes at this ciphertext); anything else is this ciphertext's outcome.
   */
  const rewrapCiphertext = async (user: UserCheckpoint, entry: Found, targetVersion: number): Promise<CiphertextOutcome> => {
    const { userId, clientId } = user;
    try {
      const stored = entry.stored ?? (await request(`could not be read from the ${deps.store.kind} store`, () => readStored(userId, clientId, entry)));
      if (stored === undefined) return { absent: true };
      const sha256 = await digestOf(entry, stored, 'does not decrypt in its context, left as it is (altered, or stored under another pair)');
      if (entry.recordedSha256 !== undefined && sha256 !== entry.recordedSha256) {
        throw new LeftAsIs('decrypts to a share whose SHA-256 is not the one recorded when Portal delivered it; left as it is');
      }
      // Read and decrypted in its context just now: verified on the new version as it is.
      if ((ciphertextVersion(stored) ?? 0) >= targetVersion) return { verified: 'alreadyCurrent' };
      const next = await rewrapTo(entry, stored, targetVersion);
      const replaced = await request('could not be replaced', () => replace(userId, clientId, entry, stored, next));
      if (replaced === 'absent') throw new LeftAsIs('it was removed from its store during the rotation; nothing written');
      await verifyReadBack(userId, clientId, entry, { stored, sha256 }, targetVersion);
      return { verified: 'rewrapped' };
    } catch (error) {
      if (error instanceof LeftAsIs) return { failed: error.message };
      throw error;
    }
  };

  /** Counts one ciphertext's outcome into the result. */
  const account = (userId: string, entry: Found, outcome: CiphertextOutcome, result: RewrapUsersResult): void => {
    if ('absent' in outcome) result.counts.pairsWithoutCiphertext += 1;
    else if ('failed' in outcome) failFound(userId, entry, result, outcome.failed);
    else {
      counterOf(entry, result)[outcome.verified] += 1;
      counterOf(entry, result).verified += 1;
    }
  };

  /**
   * The user at the checkpoint, from where it stopped: started (and listed) once, then each
   * ciphertext not done yet; `moved` after each step saves the checkpoint. Synchronous between the
   * last request and `moved`, so a checkpoint never holds half of a ciphertext's outcome.
   */
  const rewrapUser = async (input: RewrapUsersInput, checkpoint: RewrapCheckpoint, moved: () => void): Promise<void> => {
    if (!checkpoint.user) {
      const started = await startUser(input.userIds[checkpoint.next]!, input, checkpoint.result);
      if (!started) return;
      checkpoint.user = started;
      moved();
    }
    const user = checkpoint.user;
    const left = await ciphertextsLeft(user).catch((error: unknown) => failUser(user.userId, checkpoint.result, error));
    if (!left) return;
    for (const entry of left) {
      const outcome = await rewrapCiphertext(user, entry, input.targetVersion);
      account(user.userId, entry, outcome, checkpoint.result);
      user.done.push(ciphertextKey(entry));
      moved();
    }
    checkpoint.result.counts.usersVisited += 1;
  };

  return {
    /** The Transit key's versions, and whether the store can take a rewrap; refuses a store that cannot. */
    async readTransitKey(): Promise<TransitKeyState> {
      return plainBoundary(deps.heartbeatIntervalMs, async () => {
        const unsupported = !deps.store.replace ? `the ${deps.store.kind} store has no replace operation` : deps.store.replaceUnsupported;
        if (unsupported) throw new CiphertextReplaceUnsupportedError(`key rotation cannot rewrap into this store: ${unsupported}`);
        const key = await deps.transit.keyVersions();
        return {
          keyName: deps.transit.keyName,
          latestVersion: key.latestVersion,
          minDecryptionVersion: key.minDecryptionVersion,
          storeKind: deps.store.kind,
          custodianShares: deps.custodianShares !== undefined,
        };
      });
    },

    /**
     * Adds a key version unless the key is past `expectedLatestVersion` already: a retry after a
     * lost response (or a resumed workflow) finds its own rotation done and does not add another.
     */
    async rotateTransitKey(input: { rotationId: string; expectedLatestVersion: number }): Promise<{ latestVersion: number; rotated: boolean }> {
      return plainBoundary(deps.heartbeatIntervalMs, async () => {
        const before = await deps.transit.keyVersions();
        if (before.latestVersion > input.expectedLatestVersion) {
          Context.current().log.info('Transit key already rotated', { rotationId: input.rotationId, latestVersion: before.latestVersion });
          return { latestVersion: before.latestVersion, rotated: false };
        }
        const after = await deps.transit.rotateKey();
        Context.current().log.info('Transit key rotated', { rotationId: input.rotationId, from: before.latestVersion, to: after.latestVersion });
        return { latestVersion: after.latestVersion, rotated: true };
      });
    },

    /**
     * Rewraps every ciphertext of a few users to `targetVersion` and verifies each. A user whose
     * pre-rotation backup still runs is deferred. Per-user and per-ciphertext permanent problems
     * are counted and reported; transient ones retry the activity, which resumes at the ciphertext
     * it was on (its checkpoint travels in the heartbeats: activities/rotation/rewrap-checkpoint.ts). Redoing
     * a ciphertext is safe: one already on the target version is only verified, and replaces are
     * compare-and-set.
     */
    async rewrapUsers(input: RewrapUsersInput): Promise<RewrapUsersResult> {
      const checkpoint = resumedCheckpoint(Context.current().info.heartbeatDetails as unknown, input);
      const moved = (): void => {
        checkpoint.progressAtMs = Date.now();
        Context.current().heartbeat(checkpoint);
      };
      return checkpointedBoundary(
        deps.heartbeatIntervalMs,
        () => checkpoint,
        async () => {
          while (checkpoint.next < input.userIds.length) {
            await rewrapUser(input, checkpoint, moved);
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
        },
      );
    },

    /**
     * Before min_decryption_version goes up: the key still has the target version, no backup that
     * started before the rotation is running on the backups' task queue (its ciphertext, in history
     * or stored after its user was visited, is of an old version), and the company's database holds
     * no row below the target version (users the source did not list; rows of another key count too).
     */
    /** Backups and recoveries on every task queue, or only on `backupTaskQueue` when the rotation names the backups' queue. */
    async checkBeforeRaise(input: RaiseCheckInput): Promise<RaiseCheck> {
      return plainBoundary(deps.heartbeatIntervalMs, async () => {
        const reasons: string[] = [];
        const key = await deps.transit.keyVersions();
        if (key.latestVersion < input.targetVersion) reasons.push(`the key's latest version is ${key.latestVersion}, below the rotation's ${input.targetVersion}`);
        // A backup (or a recovery before its DECRYPT step) that started before the rotation holds
        // old-version ciphertexts. The rotation may run on a queue of its own: unless told the
        // backups' queue, every queue of the namespace is looked at.
        const queue = input.backupTaskQueue ? ` AND TaskQueue = '${input.backupTaskQueue.replace(/'/g, '')}'` : '';
        const query =
          `WorkflowType IN ('backupWallet', 'recoverWallet') AND ExecutionStatus = 'Running'${queue} ` +
          `AND StartTime < '${new Date(input.rotatedAtMs).toISOString()}'`;
        const running: string[] = [];
        // The raw list: only ids are needed, and runs of other deployments may carry payloads
        // (memos) this worker's codec cannot decode.
        await temporalCall('listing running backups', async () => {
          let nextPageToken: Uint8Array | undefined;
          do {
            const page = await deps.temporal.workflowService.listWorkflowExecutions({
              namespace: deps.temporal.options.namespace,
              query,
              pageSize: 1_000,
              ...(nextPageToken ? { nextPageToken } : {}),
            });
            for (const execution of page.executions ?? []) running.push(execution.execution?.workflowId ?? 'unknown');
            nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
          } while (nextPageToken && running.length < 1_000);
        });
        if (running.length > 0) {
          reasons.push(`${running.length} backup(s) or recoveries started before the rotation still run (${running.slice(0, 10).join(', ')}): they hold ciphertexts of the old version`);
        }
        // The store's own listing, when it has one: its rows below the version are counted.
        const storeRows = deps.store.kind === 'postgres' ? deps.database : undefined;
        if (!storeRows && input.everyUser !== true) {
          reasons.push(
            `the ${deps.store.kind} store cannot be listed, so its ciphertexts of users the source did not list would stop decrypting: ` +
              'raise only after a rotation whose source lists every user with a backup (keys rotate --every-user)',
          );
        }
        if (!storeRows) {
          // Only what a worker read counts: the rewrap's results reached the workflow from outside the workers' hands.
          const refused = censusRefusalOf(deps.receipts, input);
          if (refused) reasons.push(refused);
        }
        if (storeRows) {
          const stale = await countBelowVersion(storeRows, 'clientCiphertexts', input.targetVersion);
          if (stale.count > 0) reasons.push(`client_ciphertexts holds ${stale.count} ciphertext(s) below version ${input.targetVersion} (e.g. ${stale.sample.join(', ')}): users the source did not list?`);
        }
        // Whatever this worker's BACKUP_MODE: a rotation pool configured without it must not raise past custodian shares.
        if (deps.database) {
          const stale = await countBelowVersion(deps.database, 'custodianShares', input.targetVersion);
          if (stale.count > 0) reasons.push(`custodian_shares holds ${stale.count} share(s) below version ${input.targetVersion} (e.g. ${stale.sample.join(', ')}): clients the source did not list?`);
        }
        if (reasons.length > 0) return { reasons };
        return { reasons, receipt: deps.receipts.issue('RAISE_CHECK', currentRun(), raiseClaims(input.rotationId, input.targetVersion)) };
      });
    },

    /** Raises min_decryption_version to `version`, only with this run's RAISE_CHECK receipt (never above the latest version; a no-op when it is there already). */
    async raiseMinDecryptionVersion(input: { rotationId: string; version: number; check?: unknown }): Promise<{ minDecryptionVersion: number }> {
      return plainBoundary(deps.heartbeatIntervalMs, async () => {
        // Only on this run's check: a check completed from outside (or a rotation started before
        // checks carried receipts) raises nothing, and the rotation reports why.
        deps.receipts.verify('RAISE_CHECK', currentRun(), raiseClaims(input.rotationId, input.version), input.check);
        const key = await deps.transit.keyVersions();
        if (input.version > key.latestVersion) {
          throw new VaultRequestError(`min_decryption_version ${input.version} would be above the key's latest version ${key.latestVersion}`);
        }
        if (key.minDecryptionVersion >= input.version) return { minDecryptionVersion: key.minDecryptionVersion };
        const after = await deps.transit.setMinDecryptionVersion(input.version);
        Context.current().log.info('Transit key min_decryption_version raised', { rotationId: input.rotationId, from: key.minDecryptionVersion, to: after.minDecryptionVersion });
        return { minDecryptionVersion: after.minDecryptionVersion };
      });
    },
  };
}

export type KeyRotationActivities = ReturnType<typeof createKeyRotationActivities>;
