import { countBelowVersion } from '../../db/transit-version-census';
import type { StepReceipt } from '../../domain/step-receipt';
import { StepReceiptInvalidError } from '../../domain/errors';
import type { RotationCensus } from '../../contracts/rotate-keys-api';
import { temporalCall } from '../../adapters/temporal/temporal-error-classifier';
import { currentRun } from '../backup/backup-receipts';
import { rotationStores, type KeyRotationDeps } from './key-rotation-deps';
import { censusClaims } from './rotation-census';

/** What stands in the way of raising min_decryption_version; empty when nothing does, and then the receipt (RAISE_CHECK) the raise asks for. */
export interface RaiseCheck {
  reasons: string[];
  receipt?: StepReceipt;
}

export interface RaiseCheckInput {
  rotationId: string;
  targetVersion: number;
  rotatedAtMs: number;
  backupTaskQueue?: string;
  everyUser?: boolean;
  /** The census (rotation-census.ts) of a store that cannot be listed: its counts and receipt. */
  census?: Pick<RotationCensus, 'usersCounted' | 'ciphertextsCounted' | 'receipt'>;
}

/** What the check's receipt vouches for: nothing stands in the way of raising this rotation's key to this version. */
export const raiseClaims = (rotationId: string, version: number) => ({ rotationId, targetVersion: String(version), verdict: 'nothing-in-the-way' });

/** How many running runs the check names at most (the count is exact up to the page it lists). */
const MAX_RUNNING_LISTED = 1_000;

/**
 * Before min_decryption_version goes up: the key still has the target version, no backup that
 * started before the rotation is running (its ciphertext, in history or stored after its user was
 * visited, is of an old version), and no stored ciphertext of the company's is below the target
 * version. Nothing in the way: a RAISE_CHECK receipt of this run.
 */
export async function checkBeforeRaise(deps: KeyRotationDeps, input: RaiseCheckInput): Promise<RaiseCheck> {
  const reasons = [
    ...(await keyReasons(deps, input)),
    ...(await runningBackupReasons(deps, input)),
    ...(await storeReasons(deps, input)),
    ...(await custodianShareReasons(deps, input)),
  ];
  if (reasons.length > 0) return { reasons };
  return { reasons, receipt: deps.receipts.issue('RAISE_CHECK', currentRun(), raiseClaims(input.rotationId, input.targetVersion)) };
}

async function keyReasons(deps: KeyRotationDeps, input: RaiseCheckInput): Promise<string[]> {
  const key = await deps.transit.keyVersions();
  return key.latestVersion < input.targetVersion ? [`the key's latest version is ${key.latestVersion}, below the rotation's ${input.targetVersion}`] : [];
}

/**
 * A backup (or a recovery before its DECRYPT step) that started before the rotation holds
 * old-version ciphertexts. The rotation may run on a queue of its own: unless told the backups'
 * queue, every queue of the namespace is looked at.
 */
async function runningBackupReasons(deps: KeyRotationDeps, input: RaiseCheckInput): Promise<string[]> {
  const queue = input.backupTaskQueue ? ` AND TaskQueue = '${input.backupTaskQueue.replace(/'/g, '')}'` : '';
  const query =
    `WorkflowType IN ('backupWallet', 'recoverWallet') AND ExecutionStatus = 'Running'${queue} ` +
    `AND StartTime < '${new Date(input.rotatedAtMs).toISOString()}'`;
  const running = await runningWorkflowIds(deps, query);
  if (running.length === 0) return [];
  return [`${running.length} backup(s) or recoveries started before the rotation still run (${running.slice(0, 10).join(', ')}): they hold ciphertexts of the old version`];
}

/** The raw list: only ids are needed, and runs of other deployments may carry payloads (memos) this worker's codec cannot decode. */
async function runningWorkflowIds(deps: KeyRotationDeps, query: string): Promise<string[]> {
  const running: string[] = [];
  await temporalCall('listing running backups', async () => {
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await deps.temporal.workflowService.listWorkflowExecutions({
        namespace: deps.temporal.options.namespace,
        query,
        pageSize: MAX_RUNNING_LISTED,
        ...(nextPageToken ? { nextPageToken } : {}),
      });
      for (const execution of page.executions ?? []) running.push(execution.execution?.workflowId ?? 'unknown');
      nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
    } while (nextPageToken && running.length < MAX_RUNNING_LISTED);
  });
  return running;
}

/**
 * Every store that keeps a copy (the primary alone with one store). A store with its own listing
 * (PostgreSQL): its rows below the version are counted. Any other: the source must have listed
 * every user, and only a census a worker of this run made counts (the rewrap's results reached the
 * workflow from outside the workers' hands); with copies the census read every copy and had none
 * missing, or it carries no receipt.
 */
async function storeReasons(deps: KeyRotationDeps, input: RaiseCheckInput): Promise<string[]> {
  const reasons: string[] = [];
  const unlisted = rotationStores(deps).filter((store) => !(store.kind === 'postgres' && deps.database));
  if (rotationStores(deps).some((store) => store.kind === 'postgres') && deps.database) {
    const stale = await countBelowVersion(deps.database, 'clientCiphertexts', input.targetVersion);
    if (stale.count > 0) reasons.push(`client_ciphertexts holds ${stale.count} ciphertext(s) below version ${input.targetVersion} (e.g. ${stale.sample.join(', ')}): users the source did not list?`);
  }
  if (unlisted.length === 0) return reasons;
  if (input.everyUser !== true) {
    reasons.push(
      `the ${unlisted.map((store) => store.kind).join(', ')} store cannot be listed, so its ciphertexts of users the source did not list would stop decrypting: ` +
        'raise only after a rotation whose source lists every user with a backup (keys rotate --every-user)',
    );
  }
  const refused = censusRefusalOf(deps, input);
  if (refused) reasons.push(refused);
  return reasons;
}

/** Whatever this worker's BACKUP_MODE: a rotation pool configured without it must not raise past custodian shares. */
async function custodianShareReasons(deps: KeyRotationDeps, input: RaiseCheckInput): Promise<string[]> {
  if (!deps.database) return [];
  const stale = await countBelowVersion(deps.database, 'custodianShares', input.targetVersion);
  return stale.count > 0 ? [`custodian_shares holds ${stale.count} share(s) below version ${input.targetVersion} (e.g. ${stale.sample.join(', ')}): clients the source did not list?`] : [];
}

/**
 * Why the check does not take the census's word, if it does not: none was made, or its receipt is
 * not a worker's of this run for these counts and version (the census reads every ciphertext of
 * the source itself: rotation-census.ts).
 */
function censusRefusalOf(deps: KeyRotationDeps, input: RaiseCheckInput): string | undefined {
  if (!input.census) return 'no census of the store was made: every stored ciphertext of the source must be read on the new version first';
  try {
    deps.receipts.verify('ROTATION_CENSUS', currentRun(), censusClaims({ rotationId: input.rotationId, targetVersion: input.targetVersion }, input.census), input.census.receipt);
    return undefined;
  } catch (error) {
    if (error instanceof StepReceiptInvalidError) return `the census of the store is not a worker's: ${error.message}`;
    throw error;
  }
}
