import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { BackupPairIds, BackupShares, EncryptedShares, SealedShares } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import {
  CiphertextNotFoundError,
  CiphertextNotReadableError,
  CiphertextStoreUnavailableError,
  CiphertextVerificationError,
  PortalNotFoundError,
  PortalRequestRejectedError,
  SealedSharesError,
  CustodianShareMissingError,
  CustodianShareNotYetStoredError,
  VaultRequestError,
} from '../domain/errors';
import { activityBoundary } from './activity-boundary';
import type { CiphertextStore } from './ciphertext-store';
import type { CredentialsSource } from './credentials-source';
import type { PortalClient } from './portal-client';
import type { ShareSealer } from './share-sealer';
import type { BackupModeCheck } from './backup-mode';
import { custodianShareContext, transitContext } from './transit-context';
import type { UserRunGuard } from './user-run-guard';
import type { VaultTransit } from './vault-transit';

export interface ActivityDeps {
  credentials: CredentialsSource;
  portal: PortalClient;
  transit: VaultTransit;
  store: CiphertextStore;
  /** Seals shares with the workers' own key while they sit in workflow history. */
  sealer: ShareSealer;
  /** BACKUP_MODE, checked against Portal's environment before step 1 makes anything. */
  modeCheck: BackupModeCheck;
  /** Self-Managed: the custodian shares the webhook committed (absent in Portal-Managed mode). */
  custodianShares?: { getByPair(clientId: string, pairId: string): Promise<{ pairId: string; encryptedShare: string }[]> };
  /** Keeps the user's backup from running while a recovery of the same user does. */
  runGuard?: Pick<UserRunGuard, 'assertNoRecoveryRunning'>;
  /** Looks for a custodian share that has not arrived yet before parking (delivery may lag). */
  maxCustodianWaitAttempts: number;
  /** How often a running activity heartbeats; keep well under the workflow's heartbeat timeout. */
  heartbeatIntervalMs: number;
  /** Clock skew allowed between us and Portal when telling this run's orphaned pairs apart. */
  orphanScanSkewMs: number;
  /**
   * Store attempts that may find a just-written ciphertext unreadable (404) before the backup parks
   * with CiphertextNotReadableError: replication lag is worth a few retries, a store that lost the
   * write is not worth retrying forever.
   */
  maxNotReadableAttempts: number;
}

export interface MpcBackupInput {
  userId: string;
}

export interface MpcBackupResult {
  /** The `/v1/backup` response, sealed to the workers (see ShareSealer). */
  sealedShares: SealedShares;
  pairIds: BackupPairIds;
  /** Self-Managed mode: the workflow checks the custodian shares are held before marking. */
  selfManaged?: boolean;
  /** Incomplete pairs Portal made for this user since step 1 was first scheduled, other than these. */
  orphanedPairIds: string[];
  /** Set when the orphan scan itself failed; the backup goes on regardless. */
  orphanScanError?: string;
}

export interface FindOrphanedPairsInput {
  userId: string;
  /** When step 1 was first scheduled (workflow time, ms since the epoch). */
  sinceMs: number;
}

export interface EncryptSharesInput {
  userId: string;
  sealedShares?: SealedShares;
  /** Plaintext shares, as step 1 returned them before sealing existed: only from runs started then. */
  shares?: BackupShares;
}

export interface StoreCiphertextsInput {
  userId: string;
  encrypted: EncryptedShares;
  /**
   * False when the workflow has run this step before (an operator's retry after a park starts a
   * new activity whose attempt is 1 again): the pairs may then hold ciphertexts already.
   */
  firstCall?: boolean;
}

export interface MarkPairsStoredInput {
  userId: string;
  pairIds: BackupPairIds;
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The exact bytes encrypted per curve: Portal's `{id, share}` object, so recovery can rebuild it. */
export function sharePlaintext(share: { id: string; share: string }): Buffer {
  return Buffer.from(JSON.stringify({ id: share.id, share: share.share }), 'utf8');
}

/** Incomplete pairs of the client created since `sinceMs`, other than `exclude`. */
async function orphanedPairs(portal: PortalClient, clientApiKey: string, sinceMs: number, exclude: Set<string>): Promise<string[]> {
  const client = await portal.getClient(clientApiKey);
  return client.wallets
    .flatMap((wallet) => wallet.backupSharePairs)
    .filter((pair) => pair.status.toLowerCase() === 'incomplete' && !exclude.has(pair.id))
    .filter((pair) => pair.createdAt === undefined || Date.parse(pair.createdAt) >= sinceMs)
    .map((pair) => pair.id);
}

export function createActivities(deps: ActivityDeps) {
  const boundary = <T>(body: () => Promise<T>) => activityBoundary(deps.heartbeatIntervalMs, body);

  return {
    /** Step 1: ask Portal for new backup share pairs. Not idempotent at Portal. */
    async mpcBackup({ userId }: MpcBackupInput): Promise<MpcBackupResult> {
      return boundary(async () => {
        const info = Context.current().info;
        await deps.runGuard?.assertNoRecoveryRunning(userId, info.workflowExecution);
        const credentials = await deps.credentials.load(userId);
        await deps.modeCheck.verify(credentials.clientApiKey);
        const shares = await deps.portal.backup(credentials.clientApiKey, credentials.generateResponse);
        const pairIds = Object.fromEntries(CURVES.map((curve) => [curve, shares[curve].id])) as BackupPairIds;
        const result: MpcBackupResult = {
          sealedShares: deps.sealer.seal(userId, shares),
          pairIds,
          orphanedPairIds: [],
          ...(deps.modeCheck.mode === 'self-managed' ? { selfManaged: true } : {}),
        };
        if (info.attempt > 1) {
          // An earlier attempt may have reached Portal and lost its response: find the pairs it
          // made. A failure here must not fail the activity, which would call /v1/backup again.
          try {
            const fresh = new Set(CURVES.map((curve) => shares[curve].id));
            result.orphanedPairIds = await orphanedPairs(deps.portal, credentials.clientApiKey, info.scheduledTimestampMs - deps.orphanScanSkewMs, fresh);
          } catch (error) {
            result.orphanScanError = error instanceof Error ? error.message : String(error);
          }
        }
        Context.current().log.info('mpc backup shares received', {
          userId,
          pairIds: CURVES.map((curve) => shares[curve].id),
          orphaned: result.orphanedPairIds.length,
        });
        return result;
      });
    },

    /**
     * After step 1 failed for good: the pairs its attempts made at Portal whose responses were lost
     * (incomplete, created since `sinceMs` less the allowed skew), so the failure can name them.
     */
    async findOrphanedPairs({ userId, sinceMs }: FindOrphanedPairsInput): Promise<string[]> {
      return boundary(async () => {
        const { clientApiKey } = await deps.credentials.load(userId);
        return orphanedPairs(deps.portal, clientApiKey, sinceMs - deps.orphanScanSkewMs, new Set());
      });
    },

    /** Step 2: encrypt both curves in one Vault Transit batch, bound to user and pair. */
    async encryptShares({ userId, sealedShares, shares: legacyShares }: EncryptSharesInput): Promise<EncryptedShares> {
      return boundary(async () => {
        const shares = sealedShares ? deps.sealer.unseal(userId, sealedShares) : legacyShares;
        if (!shares) throw new SealedSharesError('encryptShares was called without shares: the workflow input is malformed');
        const plaintexts = CURVES.map((curve) => sharePlaintext(shares[curve]));
        const ciphertexts = await deps.transit.encryptBatch(
          CURVES.map((curve, index) => ({ plaintext: plaintexts[index]!, context: transitContext(userId, shares[curve].id) })),
        );
        const entries = CURVES.map((curve, index) => [
          curve,
          { pairId: shares[curve].id, ciphertext: ciphertexts[index]!, plaintextSha256: sha256Hex(plaintexts[index]!) },
        ]);
        return Object.fromEntries(entries) as EncryptedShares;
      });
    },

    /** Step 3: store both ciphertexts, read them back and check they decrypt to what was encrypted. */
    async storeCiphertexts({ userId, encrypted, firstCall }: StoreCiphertextsInput): Promise<void> {
      return boundary(async () => {
        const attempt = Context.current().info.attempt;
        const context = { userId };
        await deps.store.put(
          context,
          CURVES.map((curve) => ({ curve, pairId: encrypted[curve].pairId, ciphertext: encrypted[curve].ciphertext })),
          { freshPairs: attempt === 1 && firstCall !== false },
        );
        const readBack: string[] = [];
        for (const curve of CURVES) {
          const { pairId, ciphertext } = encrypted[curve];
          const stored = await deps.store.get(context, pairId, curve).catch((error: unknown) => {
            if (!(error instanceof CiphertextNotFoundError)) throw error;
            // Just written: "not found" means not readable yet (replication), unless it lasts.
            if (attempt >= deps.maxNotReadableAttempts) {
              throw new CiphertextNotReadableError(
                `the ${deps.store.kind} store accepted the ciphertext of pair ${pairId} but still has none ` +
                  `after ${attempt} attempts: check the store, then retry (the pair stays unmarked)`,
              );
            }
            throw new CiphertextStoreUnavailableError(`the ciphertext of pair ${pairId} is not readable yet; will retry`);
          });
          if (stored !== ciphertext) {
            throw new CiphertextVerificationError(
              `the ciphertext read back from the ${deps.store.kind} store for pair ${pairId} differs from the one written`,
            );
          }
          readBack.push(stored);
        }
        const plaintexts = await deps.transit.decryptBatch(
          CURVES.map((curve, index) => ({
            ciphertext: readBack[index]!,
            context: transitContext(userId, encrypted[curve].pairId),
          })),
        );
        CURVES.forEach((curve, index) => {
          if (sha256Hex(plaintexts[index]!) !== encrypted[curve].plaintextSha256) {
            throw new CiphertextVerificationError(
              `the stored ciphertext for pair ${encrypted[curve].pairId} does not decrypt to the share that was encrypted`,
            );
          }
        });
        Context.current().log.info('ciphertexts stored and verified', { userId, store: deps.store.kind });
      });
    },

    /**
     * Self-Managed, before step 4: the company must hold each pair's custodian share (committed by
     * the webhook, and decrypting), or marking would complete a backup that cannot be recovered.
     */
    async checkCustodianShares({ userId, pairIds }: MarkPairsStoredInput): Promise<void> {
      return boundary(async () => {
        if (!deps.custodianShares) {
          throw new CustodianShareMissingError('Self-Managed mode needs the company database (DATABASE_URL) on the workers to check custodian shares');
        }
        const { clientApiKey } = await deps.credentials.load(userId);
        const clientId = (await deps.portal.getClient(clientApiKey)).id;
        const attempt = Context.current().info.attempt;
        const held: { pairId: string; encryptedShare: string }[] = [];
        for (const curve of CURVES) {
          const rows = await deps.custodianShares.getByPair(clientId, pairIds[curve]);
          if (rows.length > 0) {
            held.push(...rows);
            continue;
          }
          if (attempt < deps.maxCustodianWaitAttempts) {
            throw new CustodianShareNotYetStoredError(`the custodian share of pair ${pairIds[curve]} (client ${clientId}) is not stored yet; will look again`);
          }
          throw new CustodianShareMissingError(
            `the webhook never stored the custodian share of pair ${pairIds[curve]} (client ${clientId}), after ${attempt} looks; ` +
              'Portal does not deliver it again: abandon this backup (its pairs stay incomplete) and start a new one once the webhook works',
          );
        }
        try {
          await deps.transit.decryptBatch(held.map((row) => ({ ciphertext: row.encryptedShare, context: custodianShareContext(clientId, row.pairId) })));
        } catch (error) {
          if (!(error instanceof VaultRequestError)) throw error;
          throw new CustodianShareMissingError(`a custodian share held for client ${clientId} does not decrypt in its pair's context: ${error.message}`);
        }
        Context.current().log.info('custodian shares held', { userId, pairIds });
      });
    },

    /** Step 4: mark both pairs as stored at Portal. */
    async markPairsStored({ userId, pairIds }: MarkPairsStoredInput): Promise<void> {
      return boundary(async () => {
        const { clientApiKey } = await deps.credentials.load(userId);
        const ids = CURVES.map((curve) => pairIds[curve]);
        try {
          await deps.portal.markBackupPairsStored(clientApiKey, ids);
        } catch (error) {
          // A retry after a lost response may find the pairs marked already; a Portal that
          // refuses to mark a completed pair again must not park a finished backup.
          if (!(error instanceof PortalRequestRejectedError || error instanceof PortalNotFoundError)) throw error;
          const client = await deps.portal.getClient(clientApiKey);
          const completed = new Set(
            client.wallets.flatMap((w) => w.backupSharePairs).filter((p) => p.status.toLowerCase() === 'completed').map((p) => p.id),
          );
          if (!ids.every((id) => completed.has(id))) throw error;
        }
        Context.current().log.info('backup share pairs marked stored', { userId, pairIds });
      });
    },
  };
}

export type BackupActivities = ReturnType<typeof createActivities>;
