/**
 * What the deploy commands refuse (`backup deploy …`, client/deploy-client.ts): each message says
 * what to do next. Client errors (client/client-error.ts): a refusal answers 409 and exits 2.
 */
import { ClientError } from './client-error';

/** Bad arguments to a deploy command (a ramp out of range, --from equal to --to). */
export class DeployOptionsError extends ClientError {
  override readonly name = 'DeployOptionsError';
  readonly kind = 'invalid';
}

/** The deployment, or a build id in it, is unknown to the server: no worker of it has polled yet. */
export class DeployVersionNotFoundError extends ClientError {
  override readonly name = 'DeployVersionNotFoundError';
  readonly kind = 'notFound';
  constructor(
    readonly deploymentName: string,
    readonly buildId: string | undefined,
    detail?: string,
  ) {
    super(
      buildId === undefined
        ? `no Worker Deployment ${deploymentName}: start workers with TEMPORAL_DEPLOYMENT_NAME=${deploymentName} first${detail ? ` (${detail})` : ''}`
        : `build ${buildId} is not a version of deployment ${deploymentName}: start its workers (TEMPORAL_BUILD_ID=${buildId}) and wait until they poll${detail ? ` (${detail})` : ''}`,
    );
  }
}

/** `retire` of the version new runs go to. */
export class DeployVersionIsCurrentError extends ClientError {
  override readonly name = 'DeployVersionIsCurrentError';
  readonly kind = 'refused';
  constructor(
    readonly buildId: string,
    readonly role: 'current' | 'ramping',
  ) {
    super(`build ${buildId} is the ${role} version: promote another build first (backup deploy promote --build-id <new>)`);
  }
}

/** `retire` while runs are still pinned to the version (open in visibility). */
export class DeployVersionInUseError extends ClientError {
  override readonly name = 'DeployVersionInUseError';
  readonly kind = 'refused';
  constructor(
    readonly buildId: string,
    readonly openRuns: number,
  ) {
    super(
      `build ${buildId} still has ${openRuns} open run(s) pinned to it: keep its workers until they finish (backup deploy status), ` +
        'or move parked ones with backup deploy move-parked --from … --to …',
    );
  }
}

/** `retire` before the server's own drainage check has seen the version drained. */
export class DeployVersionNotDrainedError extends ClientError {
  override readonly name = 'DeployVersionNotDrainedError';
  readonly kind = 'refused';
  constructor(
    readonly buildId: string,
    readonly drainage: string,
  ) {
    super(
      `build ${buildId} is ${drainage} by the server's drainage check: its runs are closed, but the server has not looked again yet ` +
        '(matching.wv.VersionDrainageStatusRefreshInterval, 3 minutes by default): try again shortly',
    );
  }
}

/** `retire` while workers of the version still poll. */
export class DeployVersionHasPollersError extends ClientError {
  override readonly name = 'DeployVersionHasPollersError';
  readonly kind = 'refused';
  constructor(readonly buildId: string) {
    super(
      `workers of build ${buildId} are still polling (or polled within the server's poller memory, matching.PollerHistoryTTL, 5 minutes by default): ` +
        'stop them, then retire',
    );
  }
}

/** The server refused a routing change (promote) or a deletion for a reason of its own. */
export class DeployRefusedError extends ClientError {
  override readonly name = 'DeployRefusedError';
  readonly kind = 'refused';
}

/** One run `move-parked` would not move: its history does not replay against the new version's code. */
export class RunNotReplayableError extends ClientError {
  override readonly name = 'RunNotReplayableError';
  readonly kind = 'refused';
  constructor(
    readonly workflowId: string,
    readonly runId: string,
    readonly workflowType: string,
    readonly toBuildId: string,
    readonly replayError: Error,
  ) {
    super(
      `${workflowType} ${workflowId} (run ${runId}) does not replay against build ${toBuildId} (${replayError.name}: ${replayError.message}): ` +
        'it stays on its version; keep that version’s workers until it finishes, or make the new code replay it (a patch) and try again',
    );
  }
}

/** One run `move-parked` left because it moved on while its history was checked (a retry came in). */
export class RunChangedDuringCheckError extends ClientError {
  override readonly name = 'RunChangedDuringCheckError';
  readonly kind = 'refused';
  constructor(
    readonly workflowId: string,
    readonly runId: string,
    readonly workflowType: string,
  ) {
    super(`${workflowType} ${workflowId} (run ${runId}) moved on while its history was checked: it stays on its version; run move-parked again if it is still parked`);
  }
}

/** Why move-parked left a run where it was. */
export type MoveRefusal = RunNotReplayableError | RunChangedDuringCheckError;

/** `move-parked` moved what it could and names every run it left, with why. */
export class DeployMoveIncompleteError extends ClientError {
  override readonly name = 'DeployMoveIncompleteError';
  readonly kind = 'refused';
  constructor(readonly refused: MoveRefusal[]) {
    super(`${refused.length} run(s) stay on their version:\n${refused.map((error) => `  - ${error.message}`).join('\n')}`);
  }
}

/** `promote` of a build that would not replay the open runs of unversioned workers, which move to it once it is current. */
export class DeployUnversionedRunsError extends ClientError {
  override readonly name = 'DeployUnversionedRunsError';
  readonly kind = 'refused';
  constructor(
    readonly buildId: string,
    readonly workflowIds: string[],
    detail: string,
  ) {
    super(
      `build ${buildId} cannot become current yet: the task queue has open runs started by unversioned workers, which would move to it, and ${detail}` +
        `${workflowIds.length > 0 ? ` (${workflowIds.slice(0, 10).join(', ')})` : ''}. ` +
        'Deploy the transition build first (git tag transition-versioned-1: it still replays them), promote it, and wait until `backup deploy status` shows unversionedOpenRuns: 0',
    );
  }
}
