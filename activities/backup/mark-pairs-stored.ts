import { Context } from '@temporalio/activity';
import { CURVES } from '../../domain/curves';
import { markIdempotently } from '../mark-idempotently';
import type { ActivityDeps, MarkPairsStoredInput } from '../backup-activity-types';
import { currentRun, pairClaims } from './backup-receipts';
import type { StepReceipt } from '../../domain/step-receipt';

/**
 * Step 4: mark both pairs as stored at Portal, only on the receipts of this run's STORE (and, in
 * Self-Managed mode, CHECK_CUSTODIAN): a result completed from outside the workers marks nothing.
 * Its own receipt says the pairs were marked: the workflow checks it before it says COMPLETED, so
 * a MARK completed from outside parks the run at MARK instead of closing it unmarked.
 */
export async function markPairsStored(deps: ActivityDeps, { userId, pairIds, receipts, requireReceipts }: MarkPairsStoredInput): Promise<{ receipt: StepReceipt } | void> {
  const run = requireReceipts ? currentRun() : undefined;
  if (run) {
    deps.receipts.verify('STORE', run, pairClaims(userId, pairIds), receipts?.store);
    if (deps.modeCheck.mode === 'self-managed') deps.receipts.verify('CHECK_CUSTODIAN', run, pairClaims(userId, pairIds), receipts?.custodian);
  }
  const { clientApiKey } = await deps.credentials.load(userId);
  const ids = CURVES.map((curve) => pairIds[curve]);
  await markIdempotently(
    ids,
    () => deps.portal.markBackupPairsStored(clientApiKey, ids),
    async () => (await deps.portal.getClient(clientApiKey)).wallets.flatMap((wallet) => wallet.backupSharePairs),
  );
  Context.current().log.info('backup share pairs marked stored', { userId, pairIds });
  if (run) return { receipt: deps.receipts.issue('MARK', run, pairClaims(userId, pairIds)) };
}
