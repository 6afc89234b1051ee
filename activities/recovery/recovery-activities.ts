import type { SealedShares } from '../../domain/backup-types';
import { activityBoundary } from '../activity-boundary';
import { decryptStoredBackup } from './decrypt-stored-backup';
import { findRecoverableBackup } from './find-recoverable-backup';
import { handOverSigningShares } from './hand-over-signing-shares';
import { markSigningPairsStored } from './mark-signing-pairs-stored';
import { findOrphanedSigningPairs, recoverAtPortal } from './recover-at-portal';
import type { FoundBackup, MarkSigningPairsInput, RecoverAtPortalInput, RecoveryActivityDeps } from './recovery-activity-types';

export type * from './recovery-activity-types';

/**
 * The recovery's steps (workflows/recover-wallet.ts), one file each in activities/recovery/ as the
 * backup's are in activities/backup/, each run inside the activity boundary.
 */
export function createRecoveryActivities(deps: RecoveryActivityDeps) {
  const boundary = <T>(body: () => Promise<T>) => activityBoundary(deps.heartbeatIntervalMs, body);
  return {
    /** Step 1: the newest completed backup at Portal, and its ciphertexts from the store. */
    findRecoverableBackup: (input: { userId: string; approvedAtMs?: number }) => boundary(() => findRecoverableBackup(deps, input)),
    /** Step 2: decrypt and rebuild the `/v1/backup` response, sealed, with a DECRYPT receipt. */
    decryptStoredBackup: (input: { userId: string } & FoundBackup) => boundary(() => decryptStoredBackup(deps, input)),
    /** Step 3: `POST /v1/recover` (not idempotent: a retry names the pairs of lost attempts). */
    recoverAtPortal: (input: RecoverAtPortalInput) => boundary(() => recoverAtPortal(deps, input)),
    /** After step 3's own look for orphaned signing pairs failed: look again. */
    findOrphanedSigningPairs: (input: { userId: string; sinceMs: number; exclude: string[] }) => boundary(() => findOrphanedSigningPairs(deps, input)),
    /** Step 4: the company's backend keeps the new signing shares. */
    handOverSigningShares: (input: { userId: string; sealedSigningShares: SealedShares }) => boundary(() => handOverSigningShares(deps, input)),
    /** Step 5: mark the new signing share pairs stored at Portal. */
    markSigningPairsStored: (input: MarkSigningPairsInput) => boundary(() => markSigningPairsStored(deps, input)),
  };
}

export type RecoveryActivities = ReturnType<typeof createRecoveryActivities>;
