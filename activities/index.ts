import { activityBoundary } from './activity-boundary';
import type {
  ActivityDeps,
  EncryptSharesInput,
  FindOrphanedPairsInput,
  CheckCustodianSharesInput,
  MarkPairsStoredInput,
  MpcBackupInput,
  StoreCiphertextsInput,
} from './backup-activity-types';
import { checkCustodianShares } from './backup/check-custodian-shares';
import { encryptShares } from './backup/encrypt-shares';
import { findOrphanedPairs } from './backup/find-orphaned-pairs';
import { markPairsStored } from './backup/mark-pairs-stored';
import { mpcBackup } from './backup/mpc-backup';
import { storeCiphertexts } from './backup/store-ciphertexts';

export type * from './backup-activity-types';
export { sharePlaintext } from './share-plaintext';

/**
 * The backup's activities: one file per step in activities/backup/ (mpc-backup, encrypt-shares,
 * store-ciphertexts, check-custodian-shares, mark-pairs-stored, and find-orphaned-pairs after a
 * failed step 1), each run inside the activity boundary (heartbeats, typed failures, redaction).
 */
export function createActivities(deps: ActivityDeps) {
  const boundary = <T>(body: () => Promise<T>) => activityBoundary(deps.heartbeatIntervalMs, body);
  return {
    /** Step 1: ask Portal for new backup share pairs. Not idempotent at Portal. */
    mpcBackup: (input: MpcBackupInput) => boundary(() => mpcBackup(deps, input)),
    /** After step 1 failed for good: the pairs its lost attempts made at Portal. */
    findOrphanedPairs: (input: FindOrphanedPairsInput) => boundary(() => findOrphanedPairs(deps, input)),
    /** Step 2: encrypt both curves in Vault Transit, bound to user and pair. */
    encryptShares: (input: EncryptSharesInput) => boundary(() => encryptShares(deps, input)),
    /** Step 3: store both ciphertexts, read them back and verify them. */
    storeCiphertexts: (input: StoreCiphertextsInput) => boundary(() => storeCiphertexts(deps, input)),
    /** Self-Managed, before step 4: the company holds each pair's custodian share. */
    checkCustodianShares: (input: CheckCustodianSharesInput) => boundary(() => checkCustodianShares(deps, input)),
    /** Step 4: mark both pairs as stored at Portal. */
    markPairsStored: (input: MarkPairsStoredInput) => boundary(() => markPairsStored(deps, input)),
  };
}

export type BackupActivities = ReturnType<typeof createActivities>;
