import { Context } from '@temporalio/activity';
import type { BackupPairIds, SealedShares } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { RecoveryNotConfiguredError } from '../../domain/errors';
import type { StepReceipt } from '../../domain/step-receipt';
import { currentRun, pairClaims } from '../backup/backup-receipts';
import type { RecoveryActivityDeps } from './recovery-activity-types';

/** Recovery step 4: the company's backend keeps the new signing shares, before anything is marked. Its receipt tells step 5. */
export async function handOverSigningShares(deps: RecoveryActivityDeps, { userId, sealedSigningShares }: { userId: string; sealedSigningShares: SealedShares }): Promise<{ receipt: StepReceipt }> {
  if (!deps.handover) throw new RecoveryNotConfiguredError('SIGNING_SHARES_URL is not set on this worker: set it on every worker, then retry');
  const signing = deps.sealer.unseal(userId, sealedSigningShares, 'signing-shares');
  await deps.handover.handOver(userId, signing);
  Context.current().log.info('new signing shares handed to the backend', { userId });
  const signingPairIds = Object.fromEntries(CURVES.map((curve) => [curve, signing[curve].id])) as BackupPairIds;
  return { receipt: deps.receipts.issue('HAND_OVER', currentRun(), pairClaims(userId, signingPairIds)) };
}
