import { open, readFile, type FileHandle } from 'node:fs/promises';
import * as restate from '@restatedev/restate-sdk';
import { encryptShares, markPairsStored, mpcBackup, PEER_RETRY, storeCiphertexts, type AttemptOf, type CountedStep, type PeerBackupResult, type PeerStepDeps } from './peer-steps';

/** The workflow's name; one run per key, the user id (Restate's workflow: `backup-<userId>` as ours, in its own words). */
export const RESTATE_PEER = { workflowName: 'backupWalletRestate', handler: 'run' } as const;

const RETRY = {
  initialRetryInterval: PEER_RETRY.initialIntervalMs,
  retryIntervalFactor: PEER_RETRY.factor,
  maxRetryInterval: PEER_RETRY.maxIntervalMs,
  maxRetryAttempts: PEER_RETRY.maxAttempts,
} as const;

/**
 * Step attempts written ahead to an append-only file of the peer's (one fsynced line per attempt,
 * read back when the process starts). Restate re-runs an unfinished `ctx.run` after a crash and
 * does not tell it that an earlier attempt ran (the SDK exposes no attempt count), so the peer
 * counts them itself, as the DBOS peer does in PostgreSQL: survives a SIGKILL of the service
 * process, not the loss of its disk.
 */
export class StepAttemptLog {
  private constructor(
    private readonly file: FileHandle,
    private readonly counts: Map<string, number>,
  ) {}

  static async open(path: string): Promise<StepAttemptLog> {
    const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    const counts = new Map<string, number>();
    for (const key of text.split('\n').filter(Boolean)) counts.set(key, (counts.get(key) ?? 0) + 1);
    return new StepAttemptLog(await open(path, 'a'), counts);
  }

  /** Counts one more attempt of `step` of workflow `key`, durably, and returns its number (1 for the first). */
  async next(key: string, step: CountedStep): Promise<number> {
    const entry = JSON.stringify([key, step]);
    const attempt = (this.counts.get(entry) ?? 0) + 1;
    this.counts.set(entry, attempt);
    await this.file.appendFile(`${entry}\n`);
    await this.file.datasync();
    return attempt;
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** The backup as a Restate workflow: the four steps of peer-steps.ts, each a durable `ctx.run` journaled by the server. */
export function restateBackupWorkflow(deps: PeerStepDeps, attempts: StepAttemptLog) {
  return restate.workflow({
    name: RESTATE_PEER.workflowName,
    handlers: {
      [RESTATE_PEER.handler]: async (ctx: restate.WorkflowContext, userId: string): Promise<PeerBackupResult> => {
        const attemptOf: AttemptOf = (step) => attempts.next(ctx.key, step);
        const startedAtMs = await ctx.date.now();
        // Step 1 is not idempotent at Portal: like ours, it retries a transient failure (a lost answer makes orphans, named).
        const first = await ctx.run('mpcBackup', () => mpcBackup(deps, attemptOf, userId, startedAtMs), { ...RETRY, maxRetryAttempts: PEER_RETRY.firstStepMaxAttempts });
        const encrypted = await ctx.run('encryptShares', () => encryptShares(deps, userId, first.sealed), RETRY);
        await ctx.run('storeCiphertexts', () => storeCiphertexts(deps, attemptOf, userId, encrypted), RETRY);
        await ctx.run('markPairsStored', () => markPairsStored(deps, userId, first.pairIds), RETRY);
        return { userId, pairIds: first.pairIds, orphanedPairIds: first.orphanedPairIds };
      },
    },
  });
}
