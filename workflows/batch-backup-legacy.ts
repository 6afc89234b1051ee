import {
  ApplicationFailure,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { BatchActivities } from '../activities/batch/batch-activities';
import { backupWorkflowId } from '../domain/user-id';
import { backupWallet } from './backup-wallet';
import { initialBackupSearchAttributes } from '../contracts/backup-wallet-api';
import {
  batchProblemsQuery,
  batchProgressQuery,
  cancelBatchUpdate,
  childParkedSignal,
  pauseBatchUpdate,
  resumeBatchUpdate,
  type BatchProgress,
  type BatchReport,
  type LegacyBatchBackupInput,
  type LegacyBatchCarriedState,
} from '../contracts/batch-backup-api';

const sourceActivities = proxyActivities<BatchActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const joinActivities = proxyActivities<BatchActivities>({
  startToCloseTimeout: '30 days',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** After this many child starts in one run, drain and continue as new to keep history bounded. */
const DEFAULT_STARTS_PER_RUN = 500;
const MIN_PACING_SLEEP_MS = 20;
const MAX_CATCH_UP_MS = 5_000;

/**
 * The batch as it ran before the `batch-v2` patch, kept unchanged so that batches started then
 * replay and finish as they began (batchBackup calls it when patched('batch-v2') is false).
 * Delete it, with deprecatePatch('batch-v2'), once no such batch is open: see
 * docs/changing-workflows.md.
 */
export async function legacyBatchBackup(input: LegacyBatchBackupInput): Promise<BatchReport> {
  const pageSize = input.pageSize ?? 200;
  const state: LegacyBatchCarriedState = input.carried ?? {
    listIndex: 0,
    sourceExhausted: false,
    pending: [],
    counts: { started: 0, completed: 0, failed: 0, parked: 0, skipped: 0, joined: 0 },
    problems: [],
    startedAt: new Date(Date.now()).toISOString(),
    paused: false,
    runs: 1,
  };
  let cancelled = false;
  const inFlight = new Set<string>();
  const parkedInThisRun = new Set<string>();
  const completionTimes: number[] = [];
  let startsThisRun = 0;
  const intervalMs = 60_000 / input.backupsPerMinute;
  let nextStartAt = Date.now();

  const progress = (): BatchProgress => {
    const now = Date.now();
    const lastMinute = completionTimes.filter((at) => at >= now - 60_000).length;
    const elapsedMin = Math.min(1, (now - Date.parse(state.startedAt)) / 60_000);
    const ratePerMinute = elapsedMin > 0 ? lastMinute / elapsedMin : 0;
    const total =
      input.source.kind === 'list'
        ? input.source.userIds.length
        : state.sourceExhausted
          ? state.counts.started + state.counts.joined + state.counts.skipped + state.pending.length
          : undefined;
    const done = state.counts.completed + state.counts.failed + state.counts.parked + state.counts.skipped;
    return {
      batchId: input.batchId,
      status: cancelled ? 'CANCELLING' : state.paused ? 'PAUSED' : 'RUNNING',
      ...(total !== undefined ? { total } : {}),
      counts: { ...state.counts },
      inFlight: inFlight.size,
      ratePerMinute: Math.round(ratePerMinute * 10) / 10,
      ...(total !== undefined && ratePerMinute > 0 ? { etaSeconds: Math.round(((total - done) / ratePerMinute) * 60) } : {}),
      backupsPerMinute: input.backupsPerMinute,
      concurrency: input.concurrency,
      runs: state.runs,
      startedAt: state.startedAt,
    };
  };

  setHandler(batchProgressQuery, progress);
  setHandler(batchProblemsQuery, () => state.problems);
  setHandler(pauseBatchUpdate, () => {
    state.paused = true;
    return progress();
  });
  setHandler(resumeBatchUpdate, () => {
    state.paused = false;
    return progress();
  });
  setHandler(cancelBatchUpdate, () => {
    cancelled = true;
    return progress();
  });
  setHandler(childParkedSignal, ({ userId, reason }) => {
    if (!inFlight.delete(userId)) return;
    parkedInThisRun.add(userId);
    state.counts.parked += 1;
    state.problems.push({ userId, status: 'NEEDS_ATTENTION', reason });
  });

  const settle = (userId: string, outcome: { ok: true } | { ok: false; reason: string }) => {
    if (parkedInThisRun.delete(userId)) {
      // It was parked and an operator resolved it while the batch still ran.
      state.counts.parked -= 1;
      state.problems = state.problems.filter((p) => !(p.userId === userId && p.status === 'NEEDS_ATTENTION'));
    } else if (!inFlight.delete(userId)) {
      return;
    }
    if (outcome.ok) {
      state.counts.completed += 1;
      completionTimes.push(Date.now());
      while (completionTimes.length && completionTimes[0]! < Date.now() - 60_000) completionTimes.shift();
    } else {
      state.counts.failed += 1;
      state.problems.push({ userId, status: 'FAILED', reason: outcome.reason });
    }
  };

  const launch = async (userId: string) => {
    inFlight.add(userId);
    try {
      const child = await startChild(backupWallet, {
        workflowId: backupWorkflowId(userId),
        args: [{ userId }],
        typedSearchAttributes: initialBackupSearchAttributes(),
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        // A backup must never be cut short by its batch: after step 3 that would strand shares.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      state.counts.started += 1;
      void child.result().then(
        () => settle(userId, { ok: true }),
        (error: unknown) => settle(userId, { ok: false, reason: failureReason(error) }),
      );
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) {
        settle(userId, { ok: false, reason: `could not start its backup: ${failureReason(error)}` });
        return;
      }
      state.counts.joined += 1;
      void joinActivities.awaitBackup({ userId }).then(
        (result) => {
          if (result.parked) {
            // Parked elsewhere: it frees its slot and is reported like a parked child.
            if (inFlight.delete(userId)) {
              state.counts.parked += 1;
              state.problems.push({ userId, status: 'NEEDS_ATTENTION', reason: result.reason ?? 'parked' });
            }
            return;
          }
          settle(userId, result.completed ? { ok: true } : { ok: false, reason: result.reason ?? 'did not complete' });
        },
        (joinError: unknown) => settle(userId, { ok: false, reason: failureReason(joinError) }),
      );
    }
  };

  const refill = async () => {
    if (state.pending.length > 0 || state.sourceExhausted) return;
    let page: string[];
    if (input.source.kind === 'list') {
      page = input.source.userIds.slice(state.listIndex, state.listIndex + pageSize);
      state.listIndex += page.length;
      state.sourceExhausted = state.listIndex >= input.source.userIds.length;
    } else {
      const fetched = await sourceActivities.fetchUserPage({ url: input.source.url, cursor: state.cursor, limit: pageSize });
      page = fetched.userIds;
      if (fetched.nextCursor) state.cursor = fetched.nextCursor;
      state.sourceExhausted = !fetched.nextCursor;
    }
    if (input.skipIfBackedUpSince && page.length > 0) {
      const recent = new Set(await sourceActivities.recentlyBackedUp({ userIds: page, since: input.skipIfBackedUpSince }));
      state.counts.skipped += page.filter((id) => recent.has(id)).length;
      page = page.filter((id) => !recent.has(id));
    }
    // A source may list a user twice: one backup each, not a second join of the same run.
    const queued = new Set([...state.pending, ...inFlight]);
    state.pending.push(...page.filter((id) => !queued.has(id) && (queued.add(id), true)));
  };

  while (!cancelled) {
    await condition(() => !state.paused || cancelled);
    if (cancelled) break;
    await refill();
    if (state.pending.length === 0) {
      if (state.sourceExhausted) break;
      continue;
    }
    await condition(() => inFlight.size < input.concurrency || cancelled || state.paused);
    if (cancelled || state.paused) continue;
    // Workflow time stands still within a task, so several starts due within a few milliseconds
    // go out together; a timer only when the pace really asks to wait.
    const wait = nextStartAt - Date.now();
    if (wait >= MIN_PACING_SLEEP_MS) {
      // Wait for the pace, but not through a pause or a cancel that arrives meanwhile.
      if (await condition(() => cancelled || state.paused, wait)) continue;
    }
    // A fixed schedule: a start that came late (timer and task latency) is made up by the next
    // ones, so delays do not add up over the batch. Catching up is bounded to a few seconds'
    // worth of starts (well inside the per-minute limits' headroom), e.g. after a pause.
    nextStartAt = Math.max(nextStartAt + intervalMs, Date.now() - Math.max(intervalMs, MAX_CATCH_UP_MS));
    const userId = state.pending.shift()!;
    // Not awaited: many children start in one workflow task instead of one task per child.
    void launch(userId);
    startsThisRun += 1;
    if (startsThisRun >= (input.startsPerRun ?? DEFAULT_STARTS_PER_RUN) || workflowInfo().continueAsNewSuggested) {
      await condition(() => inFlight.size === 0);
      // A cancel that arrived while draining ends the batch here instead of in the next run.
      if (cancelled) break;
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyBatchBackup>({ ...input, carried: { ...state, runs: state.runs + 1 } });
    }
  }

  // Drain: every backup in flight finishes (parked ones are reported, and keep waiting for an operator).
  await condition(() => inFlight.size === 0);
  await condition(allHandlersFinished);
  const final = progress();
  return {
    ...final,
    status: cancelled ? 'CANCELLED' : 'COMPLETED',
    problems: state.problems,
    finishedAt: new Date(Date.now()).toISOString(),
  };
}

function failureReason(error: unknown): string {
  if (error instanceof ChildWorkflowFailure && error.cause) {
    const cause = error.cause;
    return cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ${cause.message}` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}
