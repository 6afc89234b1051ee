import type { BackupPairIds } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { BackupDomainError, CustodianShareMissingError, NoCompletedBackupError } from '../../domain/errors';
import { redactSecrets } from '../../domain/redact';
import type { DrillUserOutcome } from '../../contracts/restore-drill-api';
import { sha256Hex } from '../share-plaintext';
import { newestCompletedPairs, type StoredShareProblem } from '../../adapters/stores/stored-backup';
import { checkCopies, type Problem } from './copy-checks';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import type { DrillActivityDeps } from './drill-activity-types';

/**
 * The drill's checks of one user, reading only: its newest completed backup as a restore would
 * read it, a misplaced ciphertext told apart from an altered one, and (Self-Managed) its custodian
 * shares. check-drill-users.ts runs them for a chunk of users.
 */

/**
 * Permanent errors that say the worker cannot check anything (its Vault token, the database
 * schema), not that one user's backup is bad: they fail the drill instead of marking every user.
 */
const DRILL_ABORTING_ERRORS = new Set(['VaultPermissionError', 'VaultContractError', 'KmsPermissionError', 'KmsContractError', 'DatabaseRequestError', 'CustodianShareMissingError']);
/** Other pairs of the user a misplaced ciphertext is tried against, newest first. */
const MAX_WRONG_PAIR_CANDIDATES = 8;

/** The drill's checks of one user; throws only what checkUser classifies. */
async function examine(deps: DrillActivityDeps, userId: string): Promise<DrillUserOutcome> {
  const { clientApiKey } = await deps.credentials.load(userId);
  const client = await deps.portal.getClient(clientApiKey);
  const allPairs = client.wallets.flatMap((wallet) => wallet.backupSharePairs.map((pair) => ({ ...pair, curve: wallet.curve.toUpperCase() })));
  if (!allPairs.some((pair) => pair.status.toLowerCase() === 'completed')) {
    return { userId, outcome: 'skipped', reason: 'no completed backup at Portal' };
  }
  let pairIds: BackupPairIds;
  try {
    pairIds = newestCompletedPairs(userId, client);
  } catch (error) {
    if (!(error instanceof NoCompletedBackupError)) throw error;
    return { userId, outcome: 'failed', kind: 'INCOMPLETE_BACKUP', reason: error.message };
  }
  const problems = await storedBackupProblems(deps, userId, allPairs, pairIds);
  if (deps.selfManaged) problems.push(...(await custodianProblems(deps, client.id, pairIds)));
  const [first] = problems;
  if (!first) return { userId, outcome: 'passed' };
  return { userId, outcome: 'failed', kind: first.kind, reason: problems.map((problem) => problem.reason).join('; ') };
}

type PairOfUser = { id: string; curve: string; status: string; createdAt?: string };

/**
 * The stored backup as a restore would read it: no copy at all, no copy that restores (the first
 * readable one diagnosed), then each copy that is missing or diverges (several stores only).
 */
async function storedBackupProblems(deps: DrillActivityDeps, userId: string, allPairs: PairOfUser[], pairIds: BackupPairIds): Promise<Problem[]> {
  const checked = await checkCopies(deps, userId, pairIds);
  const problems: Problem[] = checked.missingEverywhere ? [checked.missingEverywhere] : [];
  const unrestorable = checked.unrestorable;
  for (const problem of unrestorable?.problems ?? []) problems.push(await diagnose(deps, userId, allPairs, problem, unrestorable!.ciphertexts[problem.curve]));
  return [...problems, ...checked.copies];
}

/**
 * A ciphertext that cannot restore its pair: if it decrypts in the context of another pair of the
 * same user, it was stored under the wrong pair; otherwise it was altered, or is another user's.
 */
async function diagnose(deps: DrillActivityDeps, userId: string, pairs: PairOfUser[], problem: StoredShareProblem, ciphertext: string): Promise<Problem> {
  const described = `${problem.curve} pair ${problem.pairId}`;
  const candidates = pairs
    .filter((pair) => pair.id !== problem.pairId)
    .sort((a, b) => createdMs(b.createdAt) - createdMs(a.createdAt) || 0)
    .slice(0, MAX_WRONG_PAIR_CANDIDATES);
  if (candidates.length > 0) {
    const results = await deps.transit.decryptEach(candidates.map((pair) => ({ ciphertext, context: transitContext(userId, pair.id) })));
    const owner = candidates.find((_, index) => 'plaintext' in results[index]!);
    if (owner) {
      return {
        kind: 'CIPHERTEXT_WRONG_PAIR',
        reason: `${described}: the store holds the ciphertext of ${owner.curve} pair ${owner.id} (${owner.status.toLowerCase()}) under this pair`,
      };
    }
  }
  return { kind: 'CIPHERTEXT_INVALID', reason: `${described} ${problem.reason}` };
}

/** Self-Managed: each pair's custodian share is held, decrypts in its client-and-pair context, and is what Portal delivered. */
async function custodianProblems(deps: DrillActivityDeps, clientId: string, pairIds: BackupPairIds): Promise<Problem[]> {
  if (!deps.custodianShares) {
    throw new CustodianShareMissingError('Self-Managed mode needs the company database (DATABASE_URL) on the workers to check custodian shares');
  }
  const problems: Problem[] = [];
  for (const curve of CURVES) {
    const pairId = pairIds[curve];
    const rows = await deps.custodianShares.getByPair(clientId, pairId);
    if (rows.length === 0) {
      problems.push({ kind: 'CUSTODIAN_SHARE_MISSING', reason: `${curve} pair ${pairId}: no custodian share is held for client ${clientId}` });
      continue;
    }
    const results = await deps.transit.decryptEach(rows.map((row) => ({ ciphertext: row.encryptedShare, context: custodianShareContext(clientId, row.pairId) })));
    rows.forEach((row, index) => {
      const result = results[index]!;
      if ('error' in result) {
        problems.push({ kind: 'CUSTODIAN_SHARE_INVALID', reason: `${curve} pair ${pairId}: the custodian share held for client ${clientId} does not decrypt in its context: ${result.error}` });
      } else if (sha256Hex(result.plaintext) !== row.shareSha256) {
        problems.push({ kind: 'CUSTODIAN_SHARE_INVALID', reason: `${curve} pair ${pairId}: the custodian share held for client ${clientId} decrypts to something other than what Portal delivered (SHA-256 differs)` });
      }
    });
  }
  return problems;
}

/**
 * One user's outcome. Transient errors (a store, Vault or Portal unavailable) are thrown, so
 * Temporal retries the activity, until `reportTransient`: then the user is inconclusive. Permanent
 * errors about this user are a CHECK_FAILED finding; those about the worker abort the drill.
 */
export async function checkUser(deps: DrillActivityDeps, userId: string, reportTransient: boolean): Promise<DrillUserOutcome> {
  try {
    return await examine(deps, userId);
  } catch (error) {
    if (!(error instanceof BackupDomainError) || DRILL_ABORTING_ERRORS.has(error.name)) throw error;
    const reason = redactSecrets(`${error.name}: ${error.message}`);
    if (!error.retryable) return { userId, outcome: 'failed', kind: 'CHECK_FAILED', reason };
    if (reportTransient) return { userId, outcome: 'inconclusive', reason };
    throw error;
  }
}

function createdMs(createdAt: string | undefined): number {
  const ms = createdAt === undefined ? Number.NaN : Date.parse(createdAt);
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}
