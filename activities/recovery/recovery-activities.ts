import { Context } from '@temporalio/activity';
import type { BackupPairIds, SealedShares } from '../../domain/backup-types';
import { CURVES, type Curve } from '../../domain/curves';
import { PortalNotFoundError, PortalRequestRejectedError, RecoveryNotConfiguredError } from '../../domain/errors';
import { activityBoundary } from '../activity-boundary';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClient, PortalClientInfo } from '../../adapters/portal/portal-client';
import { orphanedSigningPairs } from '../backup/orphaned-pairs';
import type { ShareSealer } from '../../adapters/sealing/share-sealer';
import type { StepReceipts } from '../step-receipts';
import { currentRun, pairClaims, requireOwnWorkflowId } from '../backup/backup-receipts';
import { recoveryWorkflowId } from '../../domain/user-id';
import { sha256Hex } from '../share-plaintext';
import type { StepReceipt } from '../../domain/step-receipt';
import type { SigningShareHandover } from '../../adapters/http/signing-share-handover';
import { newestCompletedPairs, readStoredCiphertexts, requireStoredBackup } from '../../adapters/stores/stored-backup';
import type { UserRunGuard } from '../user-run-guard';
import type { KmsProvider } from '../../adapters/kms/kms-provider';

export interface RecoveryActivityDeps {
  credentials: CredentialsSource;
  portal: Pick<PortalClient, 'getClient' | 'recover' | 'markSigningPairsStored'>;
  transit: Pick<KmsProvider, 'decryptEach'>;
  store: CiphertextStore;
  sealer: ShareSealer;
  /** Proves DECRYPT's and HAND_OVER's results came from a worker of the run (see StepReceipts). */
  receipts: StepReceipts;
  /** The company's backend route for new signing shares (SIGNING_SHARES_URL); recovery refuses to start without it. */
  handover?: SigningShareHandover;
  runGuard: UserRunGuard;
  heartbeatIntervalMs: number;
  /** Clock skew allowed between us and Portal when telling a lost call's signing pairs apart. */
  orphanScanSkewMs: number;
}

export interface FoundBackup {
  backupPairIds: BackupPairIds;
  /** Vault Transit ciphertexts as stored: opaque to every holder of the payload codec key. */
  ciphertexts: Record<Curve, string>;
}

export interface RecoveredAtPortal {
  /** The `/v1/recover` response (new signing shares), sealed to the workers while in history. */
  sealedSigningShares: SealedShares;
  signingPairIds: BackupPairIds;
  /** Incomplete signing pairs made since the step was first scheduled by attempts whose answers were lost. */
  orphanedSigningPairIds: string[];
  orphanScanError?: string;
}

function signingPairs(client: PortalClientInfo) {
  return client.wallets.flatMap((wallet) => wallet.signingSharePairs);
}

/** The recovery's steps, one activity each (see workflows/recover-wallet.ts). */
export function createRecoveryActivities(deps: RecoveryActivityDeps) {
  const boundary = <T>(body: () => Promise<T>) => activityBoundary(deps.heartbeatIntervalMs, body);

  return {
    /** Recovery step 1: the newest completed backup at Portal, and its ciphertexts from the store. */
    async findRecoverableBackup({ userId }: { userId: string }): Promise<FoundBackup> {
      return boundary(async () => {
        if (!deps.handover) {
          throw new RecoveryNotConfiguredError(
            'recovery needs SIGNING_SHARES_URL on the workers (the backend route that keeps the new signing shares); set it and start the recovery again',
          );
        }
        requireOwnWorkflowId(recoveryWorkflowId(userId), userId);
        await deps.runGuard.assertNoBackupRunning(userId, Context.current().info.workflowExecution);
        const { clientApiKey } = await deps.credentials.load(userId);
        const backupPairIds = newestCompletedPairs(userId, await deps.portal.getClient(clientApiKey));
        const ciphertexts = await readStoredCiphertexts(deps.store, userId, backupPairIds);
        Context.current().log.info('recoverable backup found', { userId, backupPairIds, store: deps.store.kind });
        return { backupPairIds, ciphertexts };
      });
    },

    /**
     * Recovery step 2: decrypt in each pair's context and rebuild the `/v1/backup` response, sealed.
     * Its receipt binds the sealed box to the backup's pairs, for RECOVER to check.
     */
    async decryptStoredBackup({ userId, backupPairIds, ciphertexts }: { userId: string } & FoundBackup): Promise<DecryptedBackup> {
      return boundary(async () => {
        const shares = await requireStoredBackup(deps.transit, deps.store, userId, backupPairIds, ciphertexts);
        const sealed = deps.sealer.seal(userId, shares, 'backup-shares');
        return { ...sealed, receipt: deps.receipts.issue('DECRYPT', currentRun(), decryptedClaims(userId, backupPairIds, sealed)) };
      });
    },

    /**
     * Recovery step 3: `POST /v1/recover`. Not idempotent: an attempt whose answer was lost made
     * signing pairs nobody holds; a later attempt names them (incomplete, created since this step
     * was scheduled) so the result reports them. They are never marked, so never used.
     */
    async recoverAtPortal({ userId, sealedBackup, backupPairIds, requireReceipts }: RecoverAtPortalInput): Promise<RecoveredAtPortal> {
      return boundary(async () => {
        if (requireReceipts) {
          deps.receipts.verify('DECRYPT', currentRun(), decryptedClaims(userId, backupPairIds ?? ({} as BackupPairIds), sealedBackup), sealedBackup?.receipt);
        }
        const info = Context.current().info;
        const backup = deps.sealer.unseal(userId, sealedBackup, 'backup-shares');
        const { clientApiKey } = await deps.credentials.load(userId);
        const signing = await deps.portal.recover(clientApiKey, backup);
        const signingPairIds = Object.fromEntries(CURVES.map((curve) => [curve, signing[curve].id])) as BackupPairIds;
        const result: RecoveredAtPortal = {
          sealedSigningShares: deps.sealer.seal(userId, signing, 'signing-shares'),
          signingPairIds,
          orphanedSigningPairIds: [],
        };
        if (info.attempt > 1) {
          try {
            const since = info.scheduledTimestampMs - deps.orphanScanSkewMs;
            result.orphanedSigningPairIds = await orphanedSigningPairs(deps.portal, clientApiKey, since, new Set(Object.values(signingPairIds)));
          } catch (error) {
            // Not a reason to call /v1/recover again (that would make more pairs): the workflow looks again.
            result.orphanScanError = error instanceof Error ? error.message : String(error);
          }
        }
        Context.current().log.info('wallet recovered at Portal', {
          userId,
          signingPairIds,
          orphaned: result.orphanedSigningPairIds.length,
          orphanScanFailed: result.orphanScanError !== undefined,
        });
        return result;
      });
    },

    /**
     * After RECOVER's own look for orphaned signing pairs failed: look again, in an activity of its
     * own (Temporal retries it; its failure only leaves a note in the result).
     */
    async findOrphanedSigningPairs({ userId, sinceMs, exclude }: { userId: string; sinceMs: number; exclude: string[] }): Promise<string[]> {
      return boundary(async () => {
        const { clientApiKey } = await deps.credentials.load(userId);
        return orphanedSigningPairs(deps.portal, clientApiKey, sinceMs - deps.orphanScanSkewMs, new Set(exclude));
      });
    },

    /** Recovery step 4: the company's backend keeps the new signing shares, before anything is marked. Its receipt tells step 5. */
    async handOverSigningShares({ userId, sealedSigningShares }: { userId: string; sealedSigningShares: SealedShares }): Promise<{ receipt: StepReceipt }> {
      return boundary(async () => {
        if (!deps.handover) throw new RecoveryNotConfiguredError('SIGNING_SHARES_URL is not set on this worker: set it on every worker, then retry');
        const signing = deps.sealer.unseal(userId, sealedSigningShares, 'signing-shares');
        await deps.handover.handOver(userId, signing);
        Context.current().log.info('new signing shares handed to the backend', { userId });
        const signingPairIds = Object.fromEntries(CURVES.map((curve) => [curve, signing[curve].id])) as BackupPairIds;
        return { receipt: deps.receipts.issue('HAND_OVER', currentRun(), pairClaims(userId, signingPairIds)) };
      });
    },

    /**
     * Recovery step 5: mark the new signing share pairs STORED_CLIENT at Portal. Its receipt says
     * they were marked: the workflow checks it before it says COMPLETED.
     */
    async markSigningPairsStored({ userId, signingPairIds, handOver, requireReceipts }: MarkSigningPairsInput): Promise<{ receipt: StepReceipt } | void> {
      return boundary(async () => {
        // Only pairs whose shares this run handed to the backend: a forged hand-over marks nothing.
        const run = requireReceipts ? currentRun() : undefined;
        if (run) deps.receipts.verify('HAND_OVER', run, pairClaims(userId, signingPairIds), handOver);
        const { clientApiKey } = await deps.credentials.load(userId);
        const ids = CURVES.map((curve) => signingPairIds[curve]);
        try {
          await deps.portal.markSigningPairsStored(clientApiKey, ids);
        } catch (error) {
          // A retry after a lost answer may find them marked already.
          if (!(error instanceof PortalRequestRejectedError || error instanceof PortalNotFoundError)) throw error;
          const completed = new Set(
            signingPairs(await deps.portal.getClient(clientApiKey)).filter((p) => p.status.toLowerCase() === 'completed').map((p) => p.id),
          );
          if (!ids.every((id) => completed.has(id))) throw error;
        }
        Context.current().log.info('signing share pairs marked stored', { userId, signingPairIds });
        if (run) return { receipt: deps.receipts.issue('MARK_SIGNING', run, pairClaims(userId, signingPairIds)) };
      });
    },
  };
}

export type RecoveryActivities = ReturnType<typeof createRecoveryActivities>;

/** DECRYPT's result: the rebuilt `/v1/backup` response, sealed, with the receipt RECOVER checks. */
export type DecryptedBackup = SealedShares & { receipt?: StepReceipt };

/** Runs started since receipts set `requireReceipts` and pass the backup's pairs; older runs pass neither. */
export interface RecoverAtPortalInput {
  userId: string;
  sealedBackup: DecryptedBackup;
  backupPairIds?: BackupPairIds;
  requireReceipts?: boolean;
}

export interface MarkSigningPairsInput {
  userId: string;
  signingPairIds: BackupPairIds;
  /** HAND_OVER's receipt, from runs started since receipts. */
  handOver?: unknown;
  requireReceipts?: boolean;
}

/** DECRYPT's facts: the backup's pairs and the digest of the sealed box made from them. */
function decryptedClaims(userId: string, backupPairIds: BackupPairIds, sealed: SealedShares | undefined) {
  return { ...pairClaims(userId, backupPairIds), sealedSha256: sha256Hex(Buffer.from(String(sealed?.data), 'utf8')) };
}
