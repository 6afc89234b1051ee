import { isGrpcServiceError, type Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import {
  DeployOptionsError,
  DeployRefusedError,
  DeployVersionHasPollersError,
  DeployUnversionedRunsError,
  DeployVersionInUseError,
  DeployVersionIsCurrentError,
  DeployVersionNotDrainedError,
  DeployVersionNotFoundError,
  RunChangedDuringCheckError,
  RunNotReplayableError,
  type MoveRefusal,
} from './deploy-errors';

const GRPC_INVALID_ARGUMENT = 3;
const GRPC_NOT_FOUND = 5;
const GRPC_FAILED_PRECONDITION = 9;

const DrainageStatus = temporal.api.enums.v1.VersionDrainageStatus;
const VersionStatus = temporal.api.enums.v1.WorkerDeploymentVersionStatus;

export type VersionRole = 'current' | 'ramping' | 'draining' | 'drained' | 'inactive';

export interface DeploymentVersionStatus {
  buildId: string;
  /** Where new runs go (current, ramping), or what is left of the version (draining, drained, inactive: never current). */
  role: VersionRole;
  /** The server's own drainage check (refreshed every matching.wv.VersionDrainageStatusRefreshInterval). */
  drainage?: 'draining' | 'drained';
  drainageCheckedAt?: string;
  createdAt?: string;
  /** Open runs pinned to this version, counted in visibility now (what the server's drainage check counts). */
  openPinnedRuns: number;
}

export interface DeploymentStatus {
  deploymentName: string;
  currentBuildId?: string;
  rampingBuildId?: string;
  rampPercentage?: number;
  versions: DeploymentVersionStatus[];
  /**
   * Open runs on the task queue with no version at all: started by unversioned workers and not yet
   * picked up by a versioned one (the transition: keep unversioned workers until this is 0).
   */
  unversionedOpenRuns?: number;
}

/** A run move-parked moved (or, with dryRun, would move). */
export interface MovedRun {
  workflowId: string;
  runId: string;
  workflowType: string;
}

export interface MoveReport {
  from: string;
  to: string;
  dryRun: boolean;
  /** Replayed against the new version's code and pinned to it (dryRun: would be). */
  moved: MovedRun[];
  /** Left on their version, each with why: it did not replay, or it moved on while checked. */
  refused: MoveRefusal[];
}

/** The workflow code of the version runs are moved to: a bundle built ahead, or the entry file to bundle. */
export type ReplayCode = { bundlePath: string } | { workflowsPath: string };

/** Unversioned open runs promote replays at most; beyond, the transition build is the way (docs/changing-workflows.md). */
const MAX_UNVERSIONED_CHECKED = 1_000;

/**
 * The deploy procedure over the Worker Deployment APIs (docs/changing-workflows.md): what runs
 * where, promote a build (current or ramping), move runs parked on an old build after a replay
 * check, and retire a drained build. The same as `temporal worker deployment describe |
 * set-current-version | set-ramping-version | delete-version`, with the checks this service needs.
 */
export class DeployClient {
  constructor(
    readonly temporal: Client,
    readonly deploymentName: string,
    /** The service's task queue, for counting its unversioned runs (status). */
    private readonly taskQueue?: string,
    private readonly identity = `backup-deploy@${process.pid}`,
  ) {}

  private get namespace(): string {
    return this.temporal.options.namespace;
  }

  private get service() {
    return this.temporal.workflowService;
  }

  /** The query for open runs pinned to a build: the one the server's drainage check counts. */
  pinnedRunsQuery(buildId: string): string {
    return `BuildIds = 'pinned:${this.deploymentName}:${buildId}' AND ExecutionStatus = 'Running'`;
  }

  async openPinnedRuns(buildId: string): Promise<number> {
    const { count } = await this.service.countWorkflowExecutions({ namespace: this.namespace, query: this.pinnedRunsQuery(buildId) });
    return Number(count ?? 0);
  }

  async status(): Promise<DeploymentStatus> {
    const info = await this.describe();
    const routing = info.routingConfig;
    const currentBuildId = routing?.currentDeploymentVersion?.buildId || undefined;
    const rampingBuildId = routing?.rampingDeploymentVersion?.buildId || undefined;
    const versions = await Promise.all(
      (info.versionSummaries ?? []).map(async (summary): Promise<DeploymentVersionStatus> => {
        const buildId = summary.deploymentVersion?.buildId ?? '';
        const drainageStatus = summary.drainageInfo?.status ?? summary.drainageStatus;
        const drainage = drainageStatus === DrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING ? 'draining' : drainageStatus === DrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED ? 'drained' : undefined;
        const role: VersionRole =
          buildId === currentBuildId || summary.status === VersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT
            ? 'current'
            : buildId === rampingBuildId || summary.status === VersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING
              ? 'ramping'
              : (drainage ?? 'inactive');
        const checkedAt = timestamp(summary.drainageInfo?.lastCheckedTime);
        const createdAt = timestamp(summary.createTime);
        return {
          buildId,
          role,
          ...(drainage ? { drainage } : {}),
          ...(checkedAt ? { drainageCheckedAt: checkedAt } : {}),
          ...(createdAt ? { createdAt } : {}),
          openPinnedRuns: await this.openPinnedRuns(buildId),
        };
      }),
    );
    versions.sort((a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? ''));
    const unversioned = this.taskQueue
      ? await this.service.countWorkflowExecutions({
          namespace: this.namespace,
          query: `TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Running' AND TemporalWorkerDeploymentVersion IS NULL`,
        })
      : undefined;
    return {
      deploymentName: this.deploymentName,
      ...(currentBuildId ? { currentBuildId } : {}),
      ...(rampingBuildId ? { rampingBuildId, rampPercentage: routing?.rampingVersionPercentage ?? 0 } : {}),
      versions,
      ...(unversioned ? { unversionedOpenRuns: Number(unversioned.count ?? 0) } : {}),
    };
  }

  /**
   * Makes `buildId` the current version (new runs, and AUTO_UPGRADE runs, go to it), or with
   * `rampPercentage` (0 < N < 100) the ramping one: that share of new runs go to it.
   */
  async promote(buildId: string, options: { rampPercentage?: number; replay?: { code: ReplayCode; dataConverter: DataConverter } } = {}): Promise<DeploymentStatus> {
    const ramp = options.rampPercentage;
    if (ramp !== undefined && !(ramp > 0 && ramp < 100)) {
      throw new DeployOptionsError(`--ramp must be a percentage above 0 and below 100 (got ${ramp}); without --ramp the build becomes current`);
    }
    await this.describeVersion(buildId);
    if (options.replay) await this.checkUnversionedRuns(buildId, options.replay);
    try {
      if (ramp === undefined) {
        await this.service.setWorkerDeploymentCurrentVersion({ namespace: this.namespace, deploymentName: this.deploymentName, buildId, identity: this.identity });
      } else {
        await this.service.setWorkerDeploymentRampingVersion({ namespace: this.namespace, deploymentName: this.deploymentName, buildId, percentage: ramp, identity: this.identity });
      }
    } catch (error) {
      throw this.translate(error, buildId);
    }
    return this.status();
  }

  /**
   * The parked runs pinned to a build: backups and recoveries waiting for an operator
   * (`BackupStatus = 'NEEDS_ATTENTION'`). Nothing moves them on but a retry or an abandon, so their
   * history stays as it was checked; a run in flight is left to finish where it is.
   */
  parkedRunsQuery(buildId: string): string {
    return `${this.pinnedRunsQuery(buildId)} AND BackupStatus = 'NEEDS_ATTENTION'`;
  }

  /**
   * Moves the parked runs pinned to `from` onto `to`, one by one: each run's history is replayed
   * against `to`'s workflow code first, and only a run that replays, and whose history has not
   * grown since it was fetched, is pinned to `to` (a versioning override); the others stay where
   * they are and are reported. `dryRun` replays only.
   */
  async moveParked(options: { from: string; to: string; code: ReplayCode; dataConverter: DataConverter; dryRun?: boolean; workflowIds?: string[] }): Promise<MoveReport> {
    const { from, to } = options;
    if (from === to) throw new DeployOptionsError('--from and --to name the same build');
    await this.describeVersion(from);
    await this.describeVersion(to);
    const runs: MovedRun[] = [];
    for await (const run of this.temporal.workflow.list({ query: this.parkedRunsQuery(from) })) {
      if (options.workflowIds && !options.workflowIds.includes(run.workflowId)) continue;
      runs.push({ workflowId: run.workflowId, runId: run.runId, workflowType: run.type });
    }
    const report: MoveReport = { from, to, dryRun: options.dryRun ?? false, moved: [], refused: [] };
    if (runs.length === 0) return report;
    const { histories, results } = await this.replay(runs, options.code, options.dataConverter, `move-to-${to}`);
    for (const [index, result] of results.entries()) {
      const run = runs[index]!;
      if (result.error) {
        report.refused.push(new RunNotReplayableError(run.workflowId, run.runId, run.workflowType, to, result.error));
        continue;
      }
      if (!report.dryRun) {
        // A retry between the fetch and now would have added events the check did not see.
        const checked = histories[index]!.history.events?.length ?? 0;
        const { workflowExecutionInfo } = await this.service.describeWorkflowExecution({ namespace: this.namespace, execution: { workflowId: run.workflowId, runId: run.runId } });
        if (Number(workflowExecutionInfo?.historyLength ?? 0) !== checked) {
          report.refused.push(new RunChangedDuringCheckError(run.workflowId, run.runId, run.workflowType));
          continue;
        }
        await this.pin(run, to);
      }
      report.moved.push(run);
    }
    return report;
  }

  /** Each run's history, replayed against `code`: a replay error per run that would fail a workflow task there. */
  private async replay(runs: MovedRun[], code: ReplayCode, dataConverter: DataConverter, replayName: string) {
    const histories = await Promise.all(
      runs.map(async (run) => ({ workflowId: run.workflowId, history: await this.temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory() })),
    );
    // Loaded only here: the worker's native runtime is not needed by the other commands.
    const { Worker } = await import('@temporalio/worker');
    const replayOptions = {
      ...('bundlePath' in code ? { workflowBundle: { codePath: code.bundlePath } } : { workflowsPath: code.workflowsPath }),
      dataConverter,
      replayName,
    };
    const results: { error?: Error | undefined }[] = [];
    for await (const result of Worker.runReplayHistories(replayOptions, histories)) results.push(result);
    return { histories, results };
  }

  /**
   * Before a build becomes current: the task queue's open runs with no version (started by
   * unversioned workers) move to it at their next workflow task, so each must replay against its
   * code. Refuses, naming them, when one would not (deploy the transition build first).
   */
  private async checkUnversionedRuns(buildId: string, replay: { code: ReplayCode; dataConverter: DataConverter }): Promise<void> {
    if (!this.taskQueue) return;
    const query = `TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Running' AND TemporalWorkerDeploymentVersion IS NULL`;
    const runs: MovedRun[] = [];
    for await (const run of this.temporal.workflow.list({ query })) {
      runs.push({ workflowId: run.workflowId, runId: run.runId, workflowType: run.type });
      if (runs.length > MAX_UNVERSIONED_CHECKED) throw new DeployUnversionedRunsError(buildId, [], `more than ${MAX_UNVERSIONED_CHECKED} are open`);
    }
    if (runs.length === 0) return;
    const { results } = await this.replay(runs, replay.code, replay.dataConverter, `promote-${buildId}`);
    const failing = runs.filter((_, index) => results[index]?.error);
    if (failing.length > 0) throw new DeployUnversionedRunsError(buildId, failing.map((run) => run.workflowId), `${failing.length} of ${runs.length} would not replay`);
  }

  /** Pins one run to `buildId` (a versioning override: it takes precedence over the run's own behavior). */
  private async pin(run: MovedRun, buildId: string): Promise<void> {
    await this.service.updateWorkflowExecutionOptions({
      namespace: this.namespace,
      workflowExecution: { workflowId: run.workflowId, runId: run.runId },
      workflowExecutionOptions: {
        versioningOverride: {
          pinned: {
            behavior: temporal.api.workflow.v1.VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
            version: { deploymentName: this.deploymentName, buildId },
          },
        },
      },
      updateMask: { paths: ['versioning_override'] },
      identity: this.identity,
    });
  }

  /**
   * Deletes a version that nothing needs any more: not current or ramping, no open run pinned to
   * it, drained by the server's own check, and no worker of it polling.
   */
  async retire(buildId: string): Promise<void> {
    const status = await this.status();
    const version = status.versions.find((candidate) => candidate.buildId === buildId);
    if (!version) throw new DeployVersionNotFoundError(this.deploymentName, buildId);
    if (version.role === 'current' || version.role === 'ramping') throw new DeployVersionIsCurrentError(buildId, version.role);
    if (version.openPinnedRuns > 0) throw new DeployVersionInUseError(buildId, version.openPinnedRuns);
    if (version.drainage === 'draining') throw new DeployVersionNotDrainedError(buildId, 'still draining');
    try {
      await this.service.deleteWorkerDeploymentVersion({
        namespace: this.namespace,
        deploymentVersion: { deploymentName: this.deploymentName, buildId },
        identity: this.identity,
      });
    } catch (error) {
      throw this.translate(error, buildId);
    }
  }

  private async describe(): Promise<temporal.api.deployment.v1.IWorkerDeploymentInfo> {
    try {
      const { workerDeploymentInfo } = await this.service.describeWorkerDeployment({ namespace: this.namespace, deploymentName: this.deploymentName });
      if (!workerDeploymentInfo) throw new DeployVersionNotFoundError(this.deploymentName, undefined);
      return workerDeploymentInfo;
    } catch (error) {
      if (isGrpcServiceError(error) && error.code === GRPC_NOT_FOUND) throw new DeployVersionNotFoundError(this.deploymentName, undefined);
      throw error;
    }
  }

  private async describeVersion(buildId: string): Promise<void> {
    try {
      await this.service.describeWorkerDeploymentVersion({ namespace: this.namespace, deploymentVersion: { deploymentName: this.deploymentName, buildId } });
    } catch (error) {
      if (isGrpcServiceError(error) && error.code === GRPC_NOT_FOUND) throw new DeployVersionNotFoundError(this.deploymentName, buildId);
      throw error;
    }
  }

  /** The server's refusals, as errors that say what to do. */
  private translate(error: unknown, buildId: string): Error {
    if (!isGrpcServiceError(error)) return error instanceof Error ? error : new Error(String(error));
    const message = error.details ?? error.message;
    if (error.code === GRPC_NOT_FOUND) return new DeployVersionNotFoundError(this.deploymentName, buildId, message);
    if (/active pollers/i.test(message)) return new DeployVersionHasPollersError(buildId);
    if (/draining/i.test(message)) return new DeployVersionNotDrainedError(buildId, 'still draining');
    if (/current or ramping/i.test(message)) return new DeployVersionIsCurrentError(buildId, 'current');
    if (error.code === GRPC_FAILED_PRECONDITION || error.code === GRPC_INVALID_ARGUMENT) return new DeployRefusedError(`the server refused build ${buildId}: ${message}`);
    return error;
  }
}

function timestamp(value: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!value?.seconds) return undefined;
  return new Date(Number(value.seconds) * 1000 + Math.floor((value.nanos ?? 0) / 1e6)).toISOString();
}
