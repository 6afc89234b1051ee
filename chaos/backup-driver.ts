import { MAX_LIST_USER_IDS } from '../contracts/batch-backup-api';
import type { RotationReport } from '../contracts/rotate-keys-api';
import { BackupStatusKey, progressQuery } from '../contracts/backup-wallet-api';
import { backupWorkflowId } from '../domain/user-id';
import type { backupWallet } from '../workflows/backup-wallet';
import type { PortalSimulator } from '../simulator/portal-simulator';
import type { CampaignContext } from './campaign-context';
import type { CampaignClients } from './campaign-stack';
import type { CampaignUsers } from './fault-schedule';
import type { FaultSchedule, Watchdog } from './fault-loop';
import type { BackupOutcome, BackupRun, RecoveryOutcome } from './invariants';
import { resilient, sleep } from './resilient';

/** How often the main loop says how far it is. */
const PROGRESS_EVERY_MS = 5_000;

/**
 * Drives the backups: a window of `concurrency` in flight, polled until each ends; an operator who
 * restores a revoked key and retries; the key rotation halfway; then the recoveries.
 */
export class BackupDriver {
  readonly outcomes = new Map<string, BackupOutcome>();
  readonly inFlight = new Set<string>();
  readonly recoveryOutcomes = new Map<string, RecoveryOutcome>();
  /** How many users were started (the first `next` of `userIds`). */
  next = 0;
  operatorRetries = 0;
  timedOut = false;
  rotationStarted = false;
  rotationReport: RotationReport | undefined;
  private readonly retried = new Set<string>();
  /** The run ids the starts returned, by user (visibility lists the runs too; this misses none it lags on). */
  private readonly startedRunIds = new Map<string, Set<string>>();

  constructor(
    private readonly ctx: CampaignContext,
    private readonly clients: CampaignClients,
    private readonly simulator: PortalSimulator,
    private readonly users: CampaignUsers,
    private readonly schedule: FaultSchedule,
    private readonly watchdog: Watchdog,
  ) {}

  /** The share of backups that have ended (the milestone faults fire by it). */
  fractionEnded(): number {
    return this.outcomes.size / this.users.userIds.length;
  }

  /** Until every backup has ended or time is up; starts the rotation halfway. */
  async runBackups(): Promise<void> {
    const { ctx, users, watchdog } = this;
    const { userIds } = users;
    let lastReport = 0;
    while (this.outcomes.size < userIds.length) {
      if (Date.now() > ctx.deadline) {
        // Checks what ended; the open and unstarted backups are reported, not checked.
        this.timedOut = true;
        ctx.say(`time is up: ${this.outcomes.size} backups ended, ${this.inFlight.size} still open, ${userIds.length - this.next} never started`);
        break;
      }
      const milestoneDue = this.schedule.milestoneDue(this.fractionEnded());
      watchdog.enter('starts');
      while (!milestoneDue && this.inFlight.size < ctx.options.concurrency && this.next < userIds.length) await this.start(userIds[this.next++]!);
      watchdog.enter('polls');
      await Promise.all([...this.inFlight].map((userId) => this.poll(userId)));
      watchdog.enter('rotation start');
      await this.startRotationWhenHalfway();
      watchdog.enter('loop');
      if (Date.now() - lastReport > PROGRESS_EVERY_MS) {
        ctx.say(`${this.outcomes.size}/${userIds.length} done, ${this.inFlight.size} in flight`);
        lastReport = Date.now();
      }
      await sleep(250);
    }
  }

  private async start(userId: string): Promise<void> {
    this.inFlight.add(userId);
    const started = await Promise.all(
      Array.from({ length: this.users.doubleStart.has(userId) ? 2 : 1 }, () => resilient('start', () => this.clients.backups.startBackupWorkflow(userId))),
    );
    this.startedRunIds.set(userId, new Set(started.map((run) => run.runId)));
  }

  private async poll(userId: string): Promise<void> {
    const handle = this.clients.client.workflow.getHandle(`backup-${userId}`);
    const description = await resilient('describe', () => handle.describe());
    const status = description.typedSearchAttributes.get(BackupStatusKey);
    if (description.status.name === 'RUNNING') {
      if (status !== 'NEEDS_ATTENTION') return;
      const ruleId = this.users.revoked.get(userId);
      if (ruleId === undefined || this.retried.has(userId)) {
        // Parked for a reason the campaign did not cause: record it and stop waiting.
        this.end(userId, await this.finalOutcome(userId, 'NEEDS_ATTENTION'));
        return;
      }
      // The operator restores the key, then resumes the backup.
      this.simulator.faults.remove(ruleId);
      this.retried.add(userId);
      await resilient('retry', () => this.clients.backups.retryBackup(userId, this.clients.operator));
      this.operatorRetries += 1;
      return;
    }
    this.end(userId, await this.finalOutcome(userId, description.status.name === 'COMPLETED' ? 'COMPLETED' : (status ?? description.status.name)));
  }

  private end(userId: string, outcome: BackupOutcome): void {
    this.outcomes.set(userId, outcome);
    this.inFlight.delete(userId);
  }

  private async finalOutcome(userId: string, status: string): Promise<BackupOutcome> {
    const { client, backups } = this.clients;
    const handle = client.workflow.getHandle(`backup-${userId}`);
    const outcome: BackupOutcome = { userId, status, revokedByCampaign: this.users.revoked.has(userId), runs: [] };
    if (status === 'COMPLETED') outcome.result = await resilient('result', () => handle.result());
    else if (status === 'NEEDS_ATTENTION') {
      const progress = await resilient('progress', () => handle.query(progressQuery));
      outcome.failure = `parked at ${progress.step}: ${progress.lastError?.type}: ${progress.lastError?.message}`;
    } else {
      outcome.failure = await backups.waitForBackup(userId).then(
        () => 'completed',
        (e: Error) => e.message,
      );
    }
    const description = await resilient('describe', () => handle.describe());
    outcome.startedAt = description.startTime.getTime();
    outcome.closedAt = description.closeTime?.getTime();
    // Every run of the user: no start happens after this (both starts of a user were awaited).
    const runIds = new Set([description.runId, ...(this.startedRunIds.get(userId) ?? [])]);
    await resilient('list runs', async () => {
      for await (const execution of client.workflow.list({ query: `WorkflowId = '${backupWorkflowId(userId)}'` })) runIds.add(execution.runId);
    });
    outcome.runs = await Promise.all([...runIds].map((runId) => this.recordRun(userId, runId)));
    return outcome;
  }

  /** One run as Temporal holds it (describe reads the run itself, not visibility): times, status, its pairs. */
  private async recordRun(userId: string, runId: string): Promise<BackupRun> {
    const handle = this.clients.client.workflow.getHandle<typeof backupWallet>(backupWorkflowId(userId), runId);
    const description = await resilient('describe run', () => handle.describe());
    const execution = description.status.name;
    const status = execution === 'COMPLETED' ? 'COMPLETED' : (description.typedSearchAttributes.get(BackupStatusKey) ?? execution);
    const run: BackupRun = { runId, startedAt: description.startTime.getTime(), status };
    if (description.closeTime) run.closedAt = description.closeTime.getTime();
    if (execution === 'COMPLETED') {
      const result = await resilient('result', () => handle.result());
      run.result = result;
      run.pairIds = Object.values(result.pairIds);
    } else if (execution === 'RUNNING') {
      // Parked (or still going): its step-1 pairs, if it got that far.
      const progress = await resilient('progress', () => handle.query(progressQuery));
      if (progress.pairIds) run.pairIds = Object.values(progress.pairIds);
    } else {
      run.failure = await resilient('result', () => handle.result()).then(
        () => 'completed',
        (error: Error) => error.message,
      );
    }
    return run;
  }

  /**
   * Halfway through the backups, the Transit key is rotated: every stored ciphertext is rewrapped
   * while backups, faults and restarts go on, and min_decryption_version is raised at the end, so
   * a ciphertext the rotation missed would no longer decrypt (checked with the invariants).
   */
  private async startRotationWhenHalfway(): Promise<void> {
    const { ctx } = this;
    if (!ctx.options.rotateMidRun || this.rotationStarted || this.outcomes.size < this.users.userIds.length / 2) return;
    this.rotationStarted = true;
    const listed = this.users.userIds.slice(0, MAX_LIST_USER_IDS);
    await resilient('rotate', () =>
      this.clients.keys.rotate({ source: { kind: 'list', userIds: listed }, usersPerMinute: 6_000, concurrency: 2, usersPerActivity: 2, raiseMinDecryptionVersion: true, everyUser: true, deferredRecheckMs: 2_000, deferredRecheckMaxMs: 10_000 }, this.clients.operator),
    );
    ctx.say(`key rotation started over ${listed.length} users, ${this.outcomes.size} backups ended`);
  }

  /** The rotation ends once the last pre-rotation backup has (it defers those users until then). */
  async waitForRotation(): Promise<void> {
    const { ctx } = this;
    this.watchdog.enter('the key rotation to end');
    if (!this.rotationStarted || this.timedOut) return;
    const report = await resilient('rotation report', () => this.clients.keys.wait(), Math.max(60_000, ctx.deadline - Date.now()));
    this.rotationReport = report;
    ctx.say(`key rotation ${report.status}: ${JSON.stringify(report.counts.clientCiphertexts)}, min_decryption_version ${JSON.stringify(report.minDecryptionVersion)}`);
  }

  /**
   * Recoveries of a share of the completed users, under the same faults (no fresh backup, so each
   * user keeps exactly one backup run for the checks).
   */
  async runRecoveries(): Promise<void> {
    const { ctx } = this;
    if (this.timedOut || ctx.options.recoveryShare <= 0) return;
    const chosen = this.chooseRecoveries();
    ctx.say(`recovering ${chosen.length} wallets`);
    this.watchdog.enter('recoveries');
    const open = new Set<string>();
    let index = 0;
    while ((index < chosen.length || open.size > 0) && Date.now() < ctx.deadline) {
      while (open.size < ctx.options.concurrency && index < chosen.length) {
        const userId = chosen[index++]!;
        this.recoveryOutcomes.set(userId, { userId, status: 'RUNNING', startedAt: Date.now() });
        await resilient('recover', () => this.clients.recoveries.startRecovery(userId, { freshBackup: false }));
        open.add(userId);
      }
      for (const userId of [...open]) {
        if (await this.recoveryEnded(userId)) open.delete(userId);
      }
      await sleep(250);
    }
    for (const userId of open) this.recoveryOutcomes.get(userId)!.failure = 'still running when time ran out';
  }

  private chooseRecoveries(): string[] {
    const candidates = [...this.outcomes.values()].filter((o) => o.status === 'COMPLETED' && !o.revokedByCampaign).map((o) => o.userId);
    const chosen = candidates.filter(() => this.ctx.random.next() < this.ctx.options.recoveryShare);
    if (chosen.length === 0 && candidates.length > 0) chosen.push(candidates[0]!);
    return chosen;
  }

  /** Records the recovery's outcome once it has ended (or parked). */
  private async recoveryEnded(userId: string): Promise<boolean> {
    const status = await resilient('recovery status', () => this.clients.recoveries.getRecoveryStatus(userId));
    const outcome = this.recoveryOutcomes.get(userId)!;
    if (status.execution === 'RUNNING' && status.status !== 'NEEDS_ATTENTION') return false;
    outcome.status = status.execution === 'COMPLETED' ? 'COMPLETED' : (status.status ?? status.execution);
    if (status.result) outcome.result = status.result;
    const lastError = status.progress?.lastError;
    const failure = status.failure ?? (lastError ? `parked at ${lastError.step}: ${lastError.type}: ${lastError.message}` : undefined);
    if (failure) outcome.failure = failure;
    return true;
  }
}
