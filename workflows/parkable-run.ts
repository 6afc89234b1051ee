/**
 * The shape of a per-user run that may park (backupWallet, recoverWallet): it publishes its status
 * and step (search attributes and the progress query), times its steps, and after its point of no
 * return parks a step that failed for good as NEEDS_ATTENTION until an operator's `retry` or
 * `abandon` update. The workflow says what differs (its updates, messages, metrics); the commands
 * are the workflow's own: an upsert per published change, and whatever `onParked` sends.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { QueryDefinition, UpdateDefinition } from '@temporalio/common';
import type { BackupStatus } from '../domain/backup-types';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import { BackupStatusKey, BackupStepKey, type AbandonRequest, type RetryRequest } from '../contracts/backup-wallet-api';
import type { AuditEventKind } from '../contracts/audit-events';
import { recordActivityError, redoStepOfFailure, StepResultRefused, type OperatorDecision } from './run-helpers';
import { recordAct } from './audit-trail';

/** A step's failure as the progress shows it. */
export interface StepError<Step extends string> {
  step: Step;
  type: string;
  message: string;
  at: string;
}

/** What a parkable run's progress holds at least (BackupProgress, RecoveryProgress). */
export interface ParkableProgress<Step extends string> {
  userId: string;
  status: BackupStatus;
  step: Step | 'DONE';
  attempts: Partial<Record<Step, number>>;
  lastError?: StepError<Step>;
}

/** One call of a step: its value, or its failure as recorded (and the step a refused receipt says to run again). */
export type Attempt<T, Step extends string> = { value: T } | { failure: StepError<Step>; cause?: ActivityFailure; redo?: Step };

export interface ParkableRunOptions<Step extends string, P extends ParkableProgress<Step>> {
  progress: P;
  /** 'backup' or 'recovery': how the operator's refusals name the run. */
  noun: string;
  query: QueryDefinition<P>;
  retryUpdate: UpdateDefinition<P, [RetryRequest]>;
  abandonUpdate: UpdateDefinition<P, [AbandonRequest]>;
  /**
   * Whether BackupStep is upserted on its own when only the step changes. A backup upserts it only
   * together with a BackupStatus change (three billable actions fewer per backup).
   */
  publishStepAlone: boolean;
  /** The steps a refused receipt may send an operator's retry back to. */
  isRedoStep: (step: string | undefined) => step is Step;
  /** The audit trail's kinds of the operator's retry and abandon of this run. */
  auditKinds: { retried: AuditEventKind; abandoned: AuditEventKind };
  /** The failure that ends the run when an operator abandons it at `step`. */
  abandoned: (step: Step, reason: string) => ApplicationFailure;
  /** Called before each status change, with the progress still at the old status (metrics: no command). */
  onStatusChange?: (status: BackupStatus, step: Step | 'DONE', progress: P) => void;
  /** Called after each timed step (metrics: no command). */
  onStepTimed?: (step: Step, outcome: 'ok' | 'error', durationMs: number) => void;
  /** Called once parked (NEEDS_ATTENTION published), before waiting for the operator. */
  onParked?: (error: StepError<Step>) => Promise<void>;
  /**
   * When set, a retry or abandon must carry the operator's signed action: `validate` checks it names
   * this act (no I/O: an update validator), `verify` has a worker check the signature and returns
   * the operator (or throws, failing the update). Unset (recoveries recorded before approvals), or
   * `applies()` false (backups recorded before signed actions), retry and abandon are taken from
   * anyone who can send the update, with the name it claims.
   */
  authorize?: OperatorAuthorization;
}

/** How a parkable run checks who retries or abandons it (recoverWallet: signed operator actions). */
export interface OperatorAuthorization {
  validate(kind: 'retry' | 'abandon', request: unknown): void;
  verify(kind: 'retry' | 'abandon', request: unknown): Promise<string>;
  /**
   * Asked in the handler: whether this run checks the signature (a `patched()` id, so a decision
   * recorded before the check replays without it). Absent: always.
   */
  applies?(): boolean;
}

/** One parkable run: its progress, its published search attributes, its step timing and the operator's decision. */
export class ParkableRun<Step extends string, P extends ParkableProgress<Step>> {
  readonly progress: P;
  readonly stepDurationsMs: Partial<Record<Step, number>> = {};
  private decision: OperatorDecision | undefined;
  /** An operator's retry or abandon whose signature a worker is checking: others wait their turn. */
  private verifying = false;
  private published: { status?: string; step?: string };

  constructor(private readonly options: ParkableRunOptions<Step, P>) {
    this.progress = options.progress;
    // Each upsert is a history event, a visibility write and a billable action: skip the ones that
    // change nothing (a run started by our client or batch already carries RUNNING and its first step).
    const initial = workflowInfo().typedSearchAttributes;
    this.published = { status: initial.get(BackupStatusKey), step: initial.get(BackupStepKey) };
    this.registerHandlers();
  }

  /** Sets status and step; upserts the search attributes only when an operator's filter would see a change. */
  publish(status: BackupStatus, step: Step | 'DONE'): void {
    if (status !== this.progress.status) this.options.onStatusChange?.(status, step, this.progress);
    this.progress.status = status;
    this.progress.step = step;
    if (this.published.status === status && (this.published.step === step || !this.options.publishStepAlone)) return;
    this.published = { status, step };
    upsertSearchAttributes([
      { key: BackupStatusKey, value: status },
      { key: BackupStepKey, value: step },
    ]);
  }

  /** Runs `body` as `step`, adding its time to the step's duration; `succeeded` tells a result that is a failure. */
  async timed<T>(step: Step, body: () => Promise<T>, succeeded: (result: T) => boolean = () => true): Promise<T> {
    const started = Date.now();
    let outcome: 'ok' | 'error' = 'error';
    try {
      const result = await body();
      if (succeeded(result)) outcome = 'ok';
      return result;
    } finally {
      this.stepDurationsMs[step] = (this.stepDurationsMs[step] ?? 0) + (Date.now() - started);
      this.options.onStepTimed?.(step, outcome, Date.now() - started);
    }
  }

  /** A step that may not park (before the point of no return), timed: its value or its failure, for the workflow to end the run with. */
  once<T>(step: Step, call: () => Promise<T>): Promise<Attempt<T, Step>> {
    return this.timed(step, () => this.attempt(step, call), (outcome) => 'value' in outcome);
  }

  /**
   * The steps after the point of no return, in order: each failure parks until an operator decides.
   * When it was a refused receipt of an earlier step of `steps`, the retry runs from that step.
   */
  async parkableSteps(steps: readonly Step[], call: (step: Step) => Promise<void>): Promise<void> {
    for (let at = 0; at < steps.length; ) {
      const redo = await this.parkable(steps[at]!, () => call(steps[at]!));
      at = redo !== undefined && steps.includes(redo) ? steps.indexOf(redo) : at + 1;
    }
  }

  /** One step that parks on failure: undefined once it succeeded, or the step the operator's retry must run again. */
  private parkable(step: Step, call: () => Promise<void>): Promise<Step | undefined> {
    return this.timed(step, async () => {
      for (;;) {
        const outcome = await this.attempt(step, call);
        if ('value' in outcome) return undefined;
        await this.parkUntilDecided(step);
        if (outcome.redo !== undefined && outcome.redo !== step) return outcome.redo;
      }
    });
  }

  /**
   * One try of a step: publishes it as running and counts the attempt; a cancellation is published
   * and rethrown; an activity's failure or a refused result is recorded as the last error and returned.
   */
  private async attempt<T>(step: Step, call: () => Promise<T>): Promise<Attempt<T, Step>> {
    this.publish('RUNNING', step);
    this.progress.attempts[step] = (this.progress.attempts[step] ?? 0) + 1;
    try {
      return { value: await call() };
    } catch (error) {
      if (isCancellation(error)) {
        // An operator cancelled the run (Web UI or API): say so rather than parking.
        this.publish('CANCELLED', step);
        throw error;
      }
      if (error instanceof StepResultRefused) return this.failed({ ...error.recorded, step });
      if (!(error instanceof ActivityFailure)) throw error;
      const redo = redoStepOfFailure(error);
      return this.failed(recordActivityError(step, error), error, this.options.isRedoStep(redo) ? redo : undefined);
    }
  }

  private failed(failure: StepError<Step>, cause?: ActivityFailure, redo?: Step): Attempt<never, Step> {
    this.progress.lastError = failure;
    return { failure, ...(cause ? { cause } : {}), ...(redo !== undefined ? { redo } : {}) };
  }

  /** Parks at `step` until an operator decides: returns on retry, ends the run on abandon. */
  private async parkUntilDecided(step: Step): Promise<void> {
    this.decision = undefined;
    this.publish('NEEDS_ATTENTION', step);
    await this.options.onParked?.(this.progress.lastError!);
    try {
      await condition(() => this.decision !== undefined);
    } catch (waitError) {
      if (isCancellation(waitError)) this.publish('CANCELLED', step);
      throw waitError;
    }
    const chosen = this.decision as OperatorDecision | undefined;
    if (chosen?.kind === 'abandon') {
      this.publish('ABANDONED', step);
      // Let the abandon update return its answer before the run closes.
      await condition(allHandlersFinished);
      throw this.options.abandoned(step, chosen.reason);
    }
  }

  private registerHandlers(): void {
    const { query, retryUpdate, abandonUpdate } = this.options;
    setHandler(query, () => this.progress);
    // Without authorization the decision is taken at once (in the validator's workflow task), so of
    // a retry and an abandon arriving together the second is refused by its validator. The audit
    // trail names the verified operator, or else the name the request claims (backups: `--by`).
    const retry = (request: RetryRequest) =>
      this.checksSignature() ? this.verified('retry', request).then((by) => this.decide({ kind: 'retry' }, { verified: by })) : this.decide({ kind: 'retry' }, { claimed: request?.requestedBy });
    const abandon = (request: AbandonRequest) =>
      this.checksSignature()
        ? this.verified('abandon', request).then((by) => this.decide({ kind: 'abandon', reason: `${request.reason.trim()} (abandoned by ${by})` }, { verified: by }))
        : this.decide({ kind: 'abandon', reason: request.reason.trim() }, { claimed: request.requestedBy });
    setHandler(retryUpdate, retry, {
      validator: (request: RetryRequest) => {
        if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
        this.requireParked();
        this.options.authorize?.validate('retry', request);
      },
    });
    setHandler(
      abandonUpdate,
      abandon,
      {
        validator: (request: AbandonRequest) => {
          if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
          this.requireParked();
          if (typeof request?.reason !== 'string' || request.reason.trim().length === 0 || request.reason.length > 1000) {
            throw new Error('abandon needs a reason of 1 to 1000 characters');
          }
          this.options.authorize?.validate('abandon', request);
        },
      },
    );
  }

  /** Whether this decision's signature is checked by a worker (asked once per update, in its handler). */
  private checksSignature(): boolean {
    const authorize = this.options.authorize;
    return authorize !== undefined && (authorize.applies?.() ?? true);
  }

  /** The verified operator of a retry or abandon (a worker checks the signature). */
  private async verified(kind: 'retry' | 'abandon', request: unknown): Promise<string> {
    this.verifying = true;
    try {
      return await this.options.authorize!.verify(kind, request);
    } finally {
      this.verifying = false;
    }
  }

  /**
   * Records the operator's decision (and who took it, when verified), appends it to the audit trail
   * (scheduled in this workflow task, with the decision) and answers once the run has left
   * NEEDS_ATTENTION and the act is recorded.
   */
  private async decide(decision: OperatorDecision, actor: { verified?: string; claimed?: string | undefined }): Promise<P> {
    if (this.progress.status !== 'NEEDS_ATTENTION' || this.decision !== undefined) {
      // Another decision landed while this one's signature was being checked.
      throw ApplicationFailure.nonRetryable(`the ${this.options.noun} of user ${this.progress.userId} is no longer waiting for an operator`, 'OperatorDecisionRefused');
    }
    this.decision = decision;
    if (actor.verified !== undefined) (this.progress as P & { decidedBy?: string }).decidedBy = actor.verified;
    const step = this.progress.step;
    // Non-cancellable: a cancel request of the run must not fail the operator's answer (the run goes on).
    await CancellationScope.nonCancellable(async () => {
      const kind = decision.kind === 'retry' ? this.options.auditKinds.retried : this.options.auditKinds.abandoned;
      const details = { step, attempts: this.progress.attempts[step as Step] ?? 0, ...(decision.kind === 'abandon' ? { reason: decision.reason } : {}) };
      await recordAct(kind, { actor: actor.verified ?? actor.claimed, userId: this.progress.userId, details });
      await condition(() => this.progress.status !== 'NEEDS_ATTENTION');
    });
    return this.progress;
  }

  private requireParked(): void {
    const { noun } = this.options;
    if (this.progress.status !== 'NEEDS_ATTENTION') {
      throw new Error(`the ${noun} of user ${this.progress.userId} is ${this.progress.status}, not NEEDS_ATTENTION`);
    }
    // Both updates can arrive in one workflow task, before the run leaves NEEDS_ATTENTION: the
    // first decision wins and the other is refused, never both accepted.
    if (this.decision !== undefined) {
      throw new Error(`the ${noun} of user ${this.progress.userId} already has an operator decision (${this.decision.kind}) being carried out`);
    }
    if (this.verifying) throw new Error(`the ${noun} of user ${this.progress.userId} has an operator decision whose signature is being checked: look again in a moment`);
  }
}
