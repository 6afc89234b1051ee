import { Context } from '@temporalio/activity';
import { CURVES } from '../../domain/curves';
import { markIdempotently } from '../mark-idempotently';
import type { StepReceipt } from '../../domain/step-receipt';
import { currentRun, pairClaims } from '../backup/backup-receipts';
import type { MarkSigningPairsInput, RecoveryActivityDeps } from './recovery-activity-types';

/**
 * Recovery step 5: mark the new signing share pairs STORED_CLIENT at Portal, only those whose
 * shares this run handed to the backend (a forged hand-over marks nothing). Its receipt says they
 * were marked: the workflow checks it before it says COMPLETED.
 */
export async function markSigningPairsStored(deps: RecoveryActivityDeps, { userId, signingPairIds, handOver, requireReceipts }: MarkSigningPairsInput): Promise<{ receipt: StepReceipt } | void> {
  const run = requireReceipts ? currentRun() : undefined;
  if (run) deps.receipts.verify('HAND_OVER', run, pairClaims(userId, signingPairIds), handOver);
  const { clientApiKey } = await deps.credentials.load(userId);
  const ids = CURVES.map((curve) => signingPairIds[curve]);
  await markIdempotently(
    ids,
    () => deps.portal.markSigningPairsStored(clientApiKey, ids),
    async () => (await deps.portal.getClient(clientApiKey)).wallets.flatMap((wallet) => wallet.signingSharePairs),
  );
  Context.current().log.info('signing share pairs marked stored', { userId, signingPairIds });
  if (run) return { receipt: deps.receipts.issue('MARK_SIGNING', run, pairClaims(userId, signingPairIds)) };
}
