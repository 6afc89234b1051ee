import { createHash } from 'node:crypto';
import { CancelledFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Pool } from 'pg';
import type { CustodianShareRepository } from '../db/custodian-share-repository';
import { countBelowVersion } from '../db/transit-version-census';
import { CURVES, type Curve } from '../domain/curves';
import {
  BackupDomainError,
  CiphertextNotFoundError,
  CiphertextReplaceUnsupportedError,
  VaultPermissionError,
  VaultRequestError,
} from '../domain/errors';
import { redactSecrets } from '../domain/redact';
import { backupWorkflowId } from '../domain/user-id';
import {
  emptyRotationCounts,
  MAX_RECENT_ROTATION_FAILURES,
  type CiphertextCounts,
  type RewrapUsersInput,
  type RewrapUsersResult,
  type RotationFailure,
} from '../workflows/rotate-keys-api';
import { heartbeatEveryMs, toApplicationFailure } from './activity-boundary';
import type { CiphertextStore } from './ciphertext-store';
import type { CredentialsSource } from './credentials-source';
import type { PortalClient } from './portal-client';
import { temporalCall } from './temporal-error-classifier';
import { custodianShareContext, transitContext } from './transit-context';
import { ciphertextVersion, type VaultTransit } from './vault-transit';

/**
 * What a key rotation needs, as narrow as it can be: the worker passes its activity deps, a
 * Temporal client and the database; tests pass real adapters (or wrappers around them).
 */
export interface KeyRotationDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  transit: Pick<VaultTransit, 'keyName' | 'keyVersions' | 'rotateKey' | 'rewrapEach' | 'decryptEach' | 'setMinDecryptionVersion'>;
  store: Pick<CiphertextStore, 'kind' | 'get' | 'replace' | 'replaceUnsupported'>;
  /** Self-Managed: the custodian shares the webhook holds (rewrapped too). */
  custodianShares?: Pick<CustodianShareRepository, 'listByClient' | 'getByPair' | 'replaceIfUnchanged'>;
  /** Looks at users' backup runs (a running pre-rotation backup defers its user) and lists running ones. */
  temporal: Pick<Client, 'workflow' | 'workflowService' | 'options'>;
  /** The company's database, when the store or the mode uses it: checked for stale rows before the raise. */
  database?: Pool;
  heartbeatIntervalMs: number;
}

export interface TransitKeyState {
  keyName: string;
  latestVersion: number;
  minDecryptionVersion: number;
  storeKind: string;
  custodianShares: boolean;
}

/** What stands in the way of raising min_decryption_version; empty when nothing does. */
export interface RaiseCheck {
  reasons: string[];
}

/** One ciphertext of a user, as found before the rewrap. */
interface Found {
  kind: 'client-ciphertext' | 'custodian-share';
  pairId: string;
  curve?: Curve;
  backupMethod?: string;
  context: string;
  stored: string;
  /** Custodian shares: the SHA-256 the webhook recorded of the share Portal sent. */
  recordedSha256?: string;
}

/** A found ciphertext that decrypted, with the digest of its plaintext (the plaintext itself is dropped). */
type Opened = Found & { sha256: string };

/** Progress of one rewrapUsers activity, carried in its heartbeats so a retried attempt resumes where the last one was. */
interface RewrapCheckpoint {
  rotationId: string;
  userIds: string[];
  next: number;
  result: RewrapUsersResult;
}

/** The errors that stop every user alike (a token without the rotation policy): retried until fixed, not counted per user. */
const SYSTEMIC_ERRORS = [VaultPermissionError];

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function reasonOf(error: unknown): string {
  if (error instanceof BackupDomainError) return redactSecrets(`${error.name}: ${error.message}`);
  return redactSecrets(error instanceof Error ? `UnexpectedError: ${error.name}: ${error.message}` : `UnexpectedError: ${String(error)}`);
}

/** Transient failures retry the activity (which resumes at this user); systemic ones too, visibly. */
/**
 * An attempt of rewrapUsers that moved its checkpoint on asks for its next attempt this soon, not
 * after the backoff the earlier attempts built up: a long rotation meets transient faults all along
 * (about 9 Portal calls a user), and each attempt resumes at the user it stopped on.
 */
const RETRY_AFTER_PROGRESS_MS = 1_000;

function mustRetry(error: unknown): boolean {
  if (error instanceof CancelledFailure) return true;
  if (error instanceof BackupDomainError && error.retryable) return true;
  return SYSTEMIC_ERRORS.some((type) => error instanceof type);
}

/**
 * Like activityBoundary, but every heartbeat carries the activity's checkpoint: the periodic one
 * too, since a heartbeat without details would clear the last ones. Systemic permanent errors
 * (VaultPermissionError) are made retryable, so a missing policy waits for the fix.
 */
async function checkpointedBoundary<T>(heartbeatIntervalMs: number, checkpoint: () => unknown, body: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => context.heartbeat(checkpoint()), heartbeatEveryMs(context, heartbeatIntervalMs));
  try {
    return await Promise.race([body(), context.cancelled]);
  } catch (error) {
    if (error instanceof CancelledFailure) throw error;
    if (SYSTEMIC_ERRORS.some((type) => error instanceof type)) {
      const failure = toApplicationFailure(error);
      throw ApplicationFailure.create({ type: failure.type ?? 'VaultPermissionError', message: failure.message, nonRetryable: false });
    }
    throw toApplicationFailure(error, context.info.attempt);
  } finally {
    clearInterval(timer);
  }
}

function plainBoundary<T>(heartbeatIntervalMs: number, body: () => Promise<T>): Promise<T> {
  return checkpointedBoundary(heartbeatIntervalMs, () => undefined, body);
}

function emptyResult(): RewrapUsersResult {
  return { counts: emptyRotationCounts(), failures: [], deferred: [] };
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
    typeof checkpoint.result === 'object'
  );
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

  /** Every ciphertext the user has: the store's, for each backup share pair Portal lists (any status), and the custodian shares held. */
  const findCiphertexts = async (userId: string, result: RewrapUsersResult): Promise<{ clientId: string; found: Found[] }> => {
    const { clientApiKey } = await deps.credentials.load(userId);
    const client = await deps.portal.getClient(clientApiKey);
    const found: Found[] = [];
    for (const wallet of client.wallets) {
      const curve = CURVES.find((known) => known === wallet.curve.toUpperCase());
      if (!curve) continue; // a curve this service never backs up
      for (const pair of wallet.backupSharePairs) {
        const entry: Found = { kind: 'client-ciphertext', pairId: pair.id, curve, context: transitContext(userId, pair.id), stored: '' };
        try {
          entry.stored = await deps.store.get({ userId }, pair.id, curve);
        } catch (error) {
          if (error instanceof CiphertextNotFoundError) {
            result.counts.pairsWithoutCiphertext += 1;
            continue;
          }
          if (mustRetry(error)) throw error;
          failFound(userId, entry, result, `could not be read from the ${deps.store.kind} store: ${reasonOf(error)}`);
          continue;
        }
        found.push(entry);
      }
    }
    if (deps.custodianShares) {
      for (const row of await deps.custodianShares.listByClient(client.id)) {
        found.push({
          kind: 'custodian-share',
          pairId: row.pairId,
          backupMethod: row.backupMethod,
          context: custodianShareContext(client.id, row.pairId),
          stored: row.encryptedShare,
          recordedSha256: row.shareSha256,
        });
      }
    }
    return { clientId: client.id, found };
  };

  /** Decrypts each found ciphertext in its context: its digest is what the rewrapped one must decrypt to. */
  const open = async (userId: string, found: Found[], result: RewrapUsersResult): Promise<Opened[]> => {
    if (found.length === 0) return [];
    const plaintexts = await deps.transit.decryptEach(found.map((entry) => ({ ciphertext: entry.stored, context: entry.context })));
    const opened: Opened[] = [];
    found.forEach((entry, index) => {
      const outcome = plaintexts[index]!;
      if ('error' in outcome) {
        failFound(userId, entry, result, `does not decrypt in its context, left as it is (altered, or stored under another pair): ${outcome.error}`);
        return;
      }
      const digest = sha256Hex(outcome.plaintext);
      outcome.plaintext.fill(0);
      if (entry.recordedSha256 !== undefined && digest !== entry.recordedSha256) {
        failFound(userId, entry, result, 'decrypts to a share whose SHA-256 is not the one recorded when Portal delivered it; left as it is');
        return;
      }
      opened.push({ ...entry, sha256: digest });
    });
    return opened;
  };

  /** Compare-and-set of one ciphertext in its store. */
  const replace = async (userId: string, clientId: string, entry: Opened, next: string) => {
    if (entry.kind === 'client-ciphertext') {
      if (!deps.store.replace) throw new CiphertextReplaceUnsupportedError(`the ${deps.store.kind} store cannot replace a ciphertext`);
      return deps.store.replace({ userId }, { curve: entry.curve!, pairId: entry.pairId, ciphertext: next }, entry.stored);
    }
    const custodian = deps.custodianShares!;
    if (await custodian.replaceIfUnchanged(clientId, entry.backupMethod!, entry.pairId, entry.stored, next)) return 'replaced' as const;
    const now = (await custodian.getByPair(clientId, entry.pairId)).find((row) => row.backupMethod === entry.backupMethod);
    if (!now) return 'absent' as const;
    return now.encryptedShare === next ? ('replaced' as const) : ('changed' as const);
  };

  /** The ciphertext stored now (read back), or undefined when there is none. */
  const readBack = async (userId: string, clientId: string, entry: Opened): Promise<string | undefined> => {
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

  /** Rewraps the user's ciphertexts below the target version, writes them back if unchanged, reads back and verifies all. */
  const rewrapUser = async (userId: string, input: RewrapUsersInput, result: RewrapUsersResult): Promise<void> => {
    const runningSince = await backupRunningSince(userId);
    if (runningSince !== undefined && runningSince < input.rotatedAtMs) {
      // Between its store and its mark, a backup must find its ciphertext as it wrote it; and its
      // step-2 ciphertext, in history, is of the old version. Visit the user again once it is over.
      result.deferred.push(userId);
      result.counts.usersDeferred += 1;
      Context.current().log.info('key rotation defers a user whose backup is running', { rotationId: input.rotationId, userId });
      return;
    }
    const { clientId, found } = await findCiphertexts(userId, result);
    const opened = await open(userId, found, result);
    const stale: Opened[] = [];
    for (const entry of opened) {
      if ((ciphertextVersion(entry.stored) ?? 0) >= input.targetVersion) {
        // Read and decrypted in its context just now: verified on the new version as it is.
        counterOf(entry, result).alreadyCurrent += 1;
        counterOf(entry, result).verified += 1;
      } else {
        stale.push(entry);
      }
    }
    const rewrapped = stale.length > 0 ? await deps.transit.rewrapEach(stale.map((e) => ({ ciphertext: e.stored, context: e.context })), input.targetVersion) : [];
    const written: Opened[] = [];
    for (const [index, entry] of stale.entries()) {
      const outcome = rewrapped[index]!;
      if ('error' in outcome) {
        failFound(userId, entry, result, `Vault could not rewrap it: ${outcome.error}`);
        continue;
      }
      if (ciphertextVersion(outcome.ciphertext) !== input.targetVersion) {
        failFound(userId, entry, result, `Vault rewrapped it to version ${ciphertextVersion(outcome.ciphertext) ?? '?'}, not ${input.targetVersion}; not written`);
        continue;
      }
      try {
        const replaced = await replace(userId, clientId, entry, outcome.ciphertext);
        if (replaced === 'absent') {
          failFound(userId, entry, result, 'it was removed from its store during the rotation; nothing written');
          continue;
        }
        // 'changed': another writer (an earlier attempt of this rotation) was first; the read-back decides.
        written.push(entry);
      } catch (error) {
        if (mustRetry(error)) throw error;
        failFound(userId, entry, result, `could not be replaced: ${reasonOf(error)}`);
      }
    }
    // Verification: read each back from its store, check its version, decrypt it in its context
    // and compare the digest with the one of the ciphertext it replaced.
    const readBacks: { entry: Opened; stored: string }[] = [];
    for (const entry of written) {
      let stored: string | undefined;
      try {
        stored = await readBack(userId, clientId, entry);
      } catch (error) {
        if (mustRetry(error)) throw error;
        failFound(userId, entry, result, `could not be read back: ${reasonOf(error)}`);
        continue;
      }
      const version = stored === undefined ? undefined : ciphertextVersion(stored);
      if (stored === undefined) failFound(userId, entry, result, 'is gone from its store after the rewrap');
      else if ((version ?? 0) < input.targetVersion) {
        failFound(userId, entry, result, stored === entry.stored ? 'still holds the old ciphertext: another writer changed it in between' : `holds a ciphertext of version ${version ?? '?'} after the rewrap`);
      } else readBacks.push({ entry, stored });
    }
    if (readBacks.length > 0) {
      const plaintexts = await deps.transit.decryptEach(readBacks.map(({ entry, stored }) => ({ ciphertext: stored, context: entry.context })));
      readBacks.forEach(({ entry }, index) => {
        const outcome = plaintexts[index]!;
        if ('error' in outcome) {
          failFound(userId, entry, result, `the rewrapped ciphertext read back does not decrypt in its context: ${outcome.error}`);
          return;
        }
        const digest = sha256Hex(outcome.plaintext);
        outcome.plaintext.fill(0);
        if (digest !== entry.sha256) {
          failFound(userId, entry, result, 'the rewrapped ciphertext read back does not decrypt to the same bytes as the one it replaced');
          return;
        }
        counterOf(entry, result).rewrapped += 1;
        counterOf(entry, result).verified += 1;
      });
    }
    result.counts.usersVisited += 1;
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
     * are counted and reported; transient ones retry the activity, which resumes at the user it was
     * on (its checkpoint travels in the heartbeats). Re-running a user is safe: ciphertexts already
     * on the target version are only verified, and replaces are compare-and-set.
     */
    async rewrapUsers(input: RewrapUsersInput): Promise<RewrapUsersResult> {
      const previous = Context.current().info.heartbeatDetails as unknown;
      const checkpoint: RewrapCheckpoint = isCheckpoint(previous, input)
        ? previous
        : { rotationId: input.rotationId, userIds: input.userIds, next: 0, result: emptyResult() };
      return checkpointedBoundary(
        deps.heartbeatIntervalMs,
        () => checkpoint,
        async () => {
          const firstUser = checkpoint.next;
          try {
            await rewrapFromCheckpoint();
          } catch (error) {
            if (checkpoint.next > firstUser && error instanceof BackupDomainError && error.retryable) {
              const failure = toApplicationFailure(error);
              throw ApplicationFailure.create({
                type: failure.type ?? error.name,
                message: failure.message,
                nonRetryable: false,
                nextRetryDelay: Math.max(RETRY_AFTER_PROGRESS_MS, error.retryAfterMs ?? 0),
              });
            }
            throw error;
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

      /** Rewraps the users from the checkpoint on, moving it (and heartbeating it) after each one. */
      async function rewrapFromCheckpoint(): Promise<void> {
        while (checkpoint.next < input.userIds.length) {
          const userId = input.userIds[checkpoint.next]!;
          // Work on a copy: a user half done when a transient error strikes is redone from scratch.
          const attempt = structuredClone(checkpoint.result);
          try {
            await rewrapUser(userId, input, attempt);
          } catch (error) {
            if (mustRetry(error)) throw error;
            attempt.counts.usersFailed += 1;
            recordFailure(attempt, { userId, kind: 'user', reason: `its ciphertexts could not be listed: ${reasonOf(error)}` });
          }
          checkpoint.result = attempt;
          checkpoint.next += 1;
          Context.current().heartbeat(checkpoint);
        }
      }
    },

    /**
     * Before min_decryption_version goes up: the key still has the target version, no backup that
     * started before the rotation is running on the backups' task queue (its ciphertext, in history
     * or stored after its user was visited, is of an old version), and the company's database holds
     * no row below the target version (users the source did not list; rows of another key count too).
     */
    /** Backups and recoveries on every task queue, or only on `backupTaskQueue` when the rotation names the backups' queue. */
    async checkBeforeRaise(input: { targetVersion: number; rotatedAtMs: number; backupTaskQueue?: string }): Promise<RaiseCheck> {
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
        if (deps.database && deps.store.kind === 'postgres') {
          const stale = await countBelowVersion(deps.database, 'clientCiphertexts', input.targetVersion);
          if (stale.count > 0) reasons.push(`client_ciphertexts holds ${stale.count} ciphertext(s) below version ${input.targetVersion} (e.g. ${stale.sample.join(', ')}): users the source did not list?`);
        }
        // Whatever this worker's BACKUP_MODE: a rotation pool configured without it must not raise past custodian shares.
        if (deps.database) {
          const stale = await countBelowVersion(deps.database, 'custodianShares', input.targetVersion);
          if (stale.count > 0) reasons.push(`custodian_shares holds ${stale.count} share(s) below version ${input.targetVersion} (e.g. ${stale.sample.join(', ')}): clients the source did not list?`);
        }
        return { reasons };
      });
    },

    /** Raises min_decryption_version to `version` (never above the latest version; a no-op when it is there already). */
    async raiseMinDecryptionVersion(input: { rotationId: string; version: number }): Promise<{ minDecryptionVersion: number }> {
      return plainBoundary(deps.heartbeatIntervalMs, async () => {
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
