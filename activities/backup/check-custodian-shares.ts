import { Context } from '@temporalio/activity';
import { CURVES } from '../../domain/curves';
import { CustodianShareMissingError, CustodianShareNotYetStoredError, VaultRequestError } from '../../domain/errors';
import type { ActivityDeps, CheckCustodianSharesInput, ReceiptResult } from '../backup-activity-types';
import { currentRun, pairClaims } from './backup-receipts';
import { custodianShareContext } from '../../adapters/kms/transit-context';

/**
 * Self-Managed, before step 4: the company must hold each pair's custodian share (committed by
 * the webhook, and decrypting), or marking would complete a backup that cannot be recovered. Its
 * receipt tells step 4 so.
 */
export async function checkCustodianShares(deps: ActivityDeps, { userId, pairIds }: CheckCustodianSharesInput): Promise<ReceiptResult> {
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
  return { receipt: deps.receipts.issue('CHECK_CUSTODIAN', currentRun(), pairClaims(userId, pairIds)) };
}
