import { CancelledFailure, Context } from '@temporalio/activity';
import { CURVES } from '../../domain/curves';
import { BackupDomainError, CiphertextNotFoundError } from '../../domain/errors';
import type { RotationCensus, RotationCensusInput } from '../../contracts/rotate-keys-api';
import { currentRun } from '../backup/backup-receipts';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClient } from '../../adapters/portal/portal-client';
import { checkpointedBoundary, mustRetry, reasonOf } from './rotation-boundary';
import type { StepReceipts } from '../step-receipts';
import type { UserPage, UserPageRequest } from '../user-source';
import { ciphertextVersion } from '../../adapters/kms/kms-ciphertext';
import { newestPairIds } from '../../adapters/stores/stored-backup';

export interface RotationCensusDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  store: Pick<CiphertextStore, 'kind' | 'get'>;
  /** Every store that keeps a copy (CIPHERTEXT_STORES), the primary first: with several, every copy is counted. */
  copies?: readonly Pick<CiphertextStore, 'kind' | 'get'>[];
  receipts: StepReceipts;
  /** The paged user source, as the fleet runs read it; absent on a worker that reads none (then only list sources). */
  sourcePages?: (input: UserPageRequest) => Promise<UserPage>;
  heartbeatIntervalMs: number;
}

/** How many stale or unreadable ones the census names. */
const CENSUS_SAMPLE = 10;
/**
 * A user whose reads fail transiently (Portal, the credentials source or a store answering 5xx,
 * 429, a hang) is put aside and read again after the others, instead of failing the attempt: one
 * user's reads are four to ten requests, so at a fault rate of a few percent per request an
 * attempt that stopped at its first failing user made about one user of progress (a census of 400
 * users took about 400 attempts in the cluster campaign). Put aside at most this many; more, or
 * this many in a row, is an outage, not a flaky service: the attempt fails and Temporal's paced
 * retry takes over (contracts/step-timeouts.ts).
 */
export const CENSUS_MAX_DEFERRED = 50;
export const CENSUS_MAX_FAILING_IN_A_ROW = 10;
const DEFAULT_CENSUS_PAGE_SIZE = 200;

type Counts = Omit<RotationCensus, 'receipt'>;

/**
 * Where a census is: the page it reads (a cursor of the paged source, or an index into the list)
 * and the user within it. Carried in heartbeats, so an attempt after a worker's death resumes; and
 * sealed with a receipt, since anyone with namespace access can record heartbeat details by
 * activity id: an unsealed or altered checkpoint is ignored and the census starts over.
 */
interface CensusPosition {
  cursor?: string;
  /** A list source: the index of the page's first id. */
  listIndex: number;
  /** Users of the page done. */
  inPage: number;
  /** Users passed over after a transient failure, read again after the others (absent in earlier builds' checkpoints). */
  deferred?: string[];
}

interface SealedCheckpoint {
  position: CensusPosition;
  counts: Counts;
  progressAtMs?: number;
  seal?: unknown;
}

/**
 * The census before min_decryption_version goes up over a store that cannot be listed (Portal,
 * HTTP): the worker itself reads every stored client ciphertext of every user of the rotation's
 * source and counts those below the target version. Nothing the workflow was told (rewrap results,
 * pages, counts) is trusted: only what this activity read. Its receipt is what the check before
 * the raise asks for. Custodian shares and the PostgreSQL store are counted in the database by the
 * check itself.
 *
 * Copies (CIPHERTEXT_STORES names several stores): every copy of every pair is read and counted, the
 * PostgreSQL one too (the check also counts its rows, users outside the source included). A copy of
 * a user's newest completed backup missing from one store while another holds one is
 * `copiesMissing` and withholds the receipt (other pairs' absent copies are not counted: nothing
 * restores from them, and nothing can go stale in a store that holds none): the
 * raise waits until `backup copies repair` has recreated it (a repair copies a verified copy, so
 * run after the rewrap it writes the new version) and a rotation without a new version
 * (`keys rotate --no-rotate --raise-min-version`) counts again.
 */
export function createRotationCensus(deps: RotationCensusDeps) {
  const sealClaims = (input: RotationCensusInput, checkpoint: SealedCheckpoint) => ({
    rotationId: input.rotationId,
    targetVersion: String(input.targetVersion),
    checkpoint: JSON.stringify([checkpoint.position, checkpoint.counts]),
  });

  const resumed = (input: RotationCensusInput): SealedCheckpoint => {
    const fresh: SealedCheckpoint = { position: { listIndex: 0, inPage: 0 }, counts: { usersCounted: 0, ciphertextsCounted: 0, stale: 0, unreadable: 0, sample: [] } };
    const previous = Context.current().info.heartbeatDetails as SealedCheckpoint | undefined;
    if (!previous || typeof previous !== 'object' || !previous.position || !previous.counts) return fresh;
    try {
      deps.receipts.verify('ROTATION_CENSUS', currentRun(), sealClaims(input, previous), previous.seal);
      // When it last moved, too: an attempt that fails before it moves again is paced from there, not
      // from the activity's first scheduling (which made every such attempt wait a minute). Not sealed:
      // it only sets the pace, and never later than now.
      const progressAtMs = typeof previous.progressAtMs === 'number' ? Math.min(previous.progressAtMs, Date.now()) : undefined;
      return { position: previous.position, counts: previous.counts, ...(progressAtMs !== undefined ? { progressAtMs } : {}) };
    } catch {
      Context.current().log.warn('rotation census: a checkpoint not sealed by a worker was ignored; counting from the start', { rotationId: input.rotationId });
      return fresh;
    }
  };

  const note = (counts: Counts, line: string): void => {
    if (counts.sample.length < CENSUS_SAMPLE) counts.sample.push(line);
  };

  const stores = deps.copies && deps.copies.length > 1 ? deps.copies : [deps.store];
  const named = stores.length > 1;

  /** A pair's copy in one store, or undefined when that store has none. */
  const read = async (store: Pick<CiphertextStore, 'get'>, userId: string, pairId: string, curve: (typeof CURVES)[number]): Promise<string | undefined> => {
    try {
      return await store.get({ userId }, pairId, curve);
    } catch (error) {
      if (error instanceof CiphertextNotFoundError) return undefined;
      throw error;
    }
  };

  /** One user: every pair Portal lists on a curve this service backs up, and its stored ciphertext (each copy) if any. */
  const countUser = async (userId: string, targetVersion: number, counts: Counts): Promise<void> => {
    // Counted apart and added once the user is done: a user passed over halfway must not count twice.
    const mine: Counts = { usersCounted: 1, ciphertextsCounted: 0, stale: 0, unreadable: 0, sample: [] };
    try {
      await countStored(userId, targetVersion, mine);
    } catch (error) {
      if (mustRetry(error)) throw error;
      mine.unreadable += 1;
      note(mine, `${userId}: could not be read: ${reasonOf(error)}`);
    }
    addCounts(counts, mine);
  };

  const countStored = async (userId: string, targetVersion: number, counts: Counts): Promise<void> => {
    const { clientApiKey } = await deps.credentials.load(userId);
    const client = await deps.portal.getClient(clientApiKey);
    // With copies, a missing copy counts only for the newest completed backup (what repair recreates: rewrap-copies.ts).
    const newest = named ? newestPairIds(userId, client) : new Set<string>();
    for (const wallet of client.wallets) {
      const curve = CURVES.find((known) => known === wallet.curve.toUpperCase());
      if (!curve) continue;
      for (const pair of wallet.backupSharePairs) {
        const copies: { store: string; stored: string | undefined }[] = [];
        for (const store of stores) copies.push({ store: store.kind, stored: await read(store, userId, pair.id, curve) });
        // No copy anywhere: the pair has no ciphertext (nothing to decrypt after the raise).
        if (copies.every((copy) => copy.stored === undefined)) continue;
        for (const copy of copies) {
          const where = named ? ` (${copy.store} copy)` : '';
          if (copy.stored === undefined) {
            if (!newest.has(pair.id)) continue;
            counts.copiesMissing = (counts.copiesMissing ?? 0) + 1;
            note(counts, `${userId}/${pair.id}: no copy in the ${copy.store} store`);
            continue;
          }
          counts.ciphertextsCounted += 1;
          const version = ciphertextVersion(copy.stored) ?? 0;
          if (version < targetVersion) {
            counts.stale += 1;
            note(counts, `${userId}/${pair.id}${where}: version ${version || '?'}`);
          }
        }
      }
    }
  };

  /** The page at `position`: a slice of the list, or the paged source's page at the cursor. */
  const pageAt = async (input: RotationCensusInput, position: CensusPosition, pageSize: number): Promise<UserPage & { last: boolean }> => {
    if (input.source.kind === 'list') {
      const userIds = input.source.userIds.slice(position.listIndex, position.listIndex + pageSize);
      return { userIds, last: position.listIndex + pageSize >= input.source.userIds.length };
    }
    if (!deps.sourcePages) throw new Error('this worker reads no paged user source');
    const page = await deps.sourcePages({ url: input.source.url, limit: pageSize, ...(position.cursor ? { cursor: position.cursor } : {}) });
    return { ...page, last: !page.nextCursor };
  };

  return {
    /** Counts every stored client ciphertext of the source's users below the target version; a receipt when there are none and every user was read. */
    async censusBeforeRaise(input: RotationCensusInput): Promise<RotationCensus> {
      if (stores.every((store) => store.kind === 'postgres')) return { usersCounted: 0, ciphertextsCounted: 0, stale: 0, unreadable: 0, sample: [], storeCountedByCheck: true };
      const checkpoint = resumed(input);
      // A copy: the SDK may send a throttled heartbeat's details later, when the counts have moved on from what was sealed.
      const seal = (): SealedCheckpoint => {
        const copy = structuredClone({ position: checkpoint.position, counts: checkpoint.counts, ...(checkpoint.progressAtMs ? { progressAtMs: checkpoint.progressAtMs } : {}) });
        return { ...copy, seal: deps.receipts.issue('ROTATION_CENSUS', currentRun(), sealClaims(input, copy)) };
      };
      const moved = (): void => {
        checkpoint.progressAtMs = Date.now();
        Context.current().heartbeat(seal());
      };
      /** The checkpoint as it stands, without claiming progress (a user passed over is not progress). */
      const kept = (): void => Context.current().heartbeat(seal());
      let failingInARow = 0;
      let lastDeferral: unknown;
      /** Counts the user, or puts it aside after a transient failure; false when it was put aside. */
      const tryUser = async (userId: string): Promise<boolean> => {
        try {
          await countUser(userId, input.targetVersion, checkpoint.counts);
          failingInARow = 0;
          return true;
        } catch (error) {
          if (!deferrable(error) || ++failingInARow >= CENSUS_MAX_FAILING_IN_A_ROW) throw error;
          lastDeferral = error;
          return false;
        }
      };
      /** Reads the users put aside again, as long as each round counts one of them; none counted is an outage. */
      const readDeferred = async (): Promise<void> => {
        while ((checkpoint.position.deferred ?? []).length > 0) {
          let counted = 0;
          for (const userId of [...(checkpoint.position.deferred ?? [])]) {
            if (!(await tryUser(userId))) continue;
            checkpoint.position.deferred = (checkpoint.position.deferred ?? []).filter((id) => id !== userId);
            counted += 1;
            moved();
          }
          if (counted === 0) throw lastDeferral;
        }
      };
      return checkpointedBoundary(deps.heartbeatIntervalMs, seal, async () => {
        const pageSize = input.pageSize ?? DEFAULT_CENSUS_PAGE_SIZE;
        for (;;) {
          const { position } = checkpoint;
          const page = await pageAt(input, position, pageSize);
          for (const userId of page.userIds.slice(position.inPage)) {
            const counted = await tryUser(userId);
            position.inPage += 1;
            if (counted) {
              moved();
              continue;
            }
            position.deferred = [...(position.deferred ?? []), userId];
            kept();
            if (position.deferred.length >= CENSUS_MAX_DEFERRED) await readDeferred();
          }
          if (page.last) break;
          checkpoint.position = { listIndex: position.listIndex + page.userIds.length, inPage: 0, ...(page.nextCursor ? { cursor: page.nextCursor } : {}), ...(position.deferred?.length ? { deferred: position.deferred } : {}) };
          moved();
        }
        await readDeferred();
        const { counts } = checkpoint;
        Context.current().log.info('rotation census done', { rotationId: input.rotationId, ...counts, sample: undefined });
        if (counts.stale > 0 || counts.unreadable > 0 || (counts.copiesMissing ?? 0) > 0) return { ...counts };
        return { ...counts, receipt: deps.receipts.issue('ROTATION_CENSUS', currentRun(), censusClaims(input, counts)) };
      });
    },
  };
}

/** A failure of one user's reads that another try may not meet: a retryable domain error (not a cancellation, not a permission). */
function deferrable(error: unknown): boolean {
  return !(error instanceof CancelledFailure) && error instanceof BackupDomainError && error.retryable;
}

/** Adds one user's counts to the census's (the sample up to CENSUS_SAMPLE). */
function addCounts(counts: Counts, mine: Counts): void {
  counts.usersCounted += mine.usersCounted;
  counts.ciphertextsCounted += mine.ciphertextsCounted;
  counts.stale += mine.stale;
  counts.unreadable += mine.unreadable;
  if (mine.copiesMissing) counts.copiesMissing = (counts.copiesMissing ?? 0) + mine.copiesMissing;
  counts.sample.push(...mine.sample.slice(0, Math.max(0, CENSUS_SAMPLE - counts.sample.length)));
}

/** What a census's receipt vouches for: the rotation, the version, and that nothing below it was found among so many. */
export function censusClaims(input: { rotationId: string; targetVersion: number }, counts: Pick<Counts, 'usersCounted' | 'ciphertextsCounted'>) {
  return {
    rotationId: input.rotationId,
    targetVersion: String(input.targetVersion),
    verdict: 'every-ciphertext-current',
    usersCounted: String(counts.usersCounted),
    ciphertextsCounted: String(counts.ciphertextsCounted),
  };
}

export type RotationCensusActivities = ReturnType<typeof createRotationCensus>;
