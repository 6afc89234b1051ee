import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { DeployClient, type MoveReport, type ReplayCode } from '../../client/deploy-client';
import {
  DeployUnversionedRunsError,
  DeployVersionHasPollersError,
  DeployVersionInUseError,
  DeployVersionIsCurrentError,
  DeployVersionNotDrainedError,
  DeployVersionNotFoundError,
  RunNotReplayableError,
} from '../../client/deploy-errors';
import type { RecoveryClient } from '../../client/recovery-client';
import { backupDataConverter, FAILURE_CONVERTER_PATH } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { backupWorkflowId } from '../../domain/user-id';
import { startTemporalDevServer, type TemporalDevServer } from '../../stack/temporal-dev-server';
import { WORKFLOWS_PATH } from '../../worker/workflows-path';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveryClient, operatorSigner } from '../support/operators';

/**
 * Worker Versioning end to end on a dev server (the CLI's, server 1.29.1): version-1 workers run
 * backups (completed, in flight, parked) and a parked recovery; version-2 workers run code that
 * would not replay version-1 backups; after `promote`, version-1 runs finish on version 1, new runs
 * go to version 2, move-parked moves only what replays, and `retire` waits for the drain.
 *
 * A dev server of its own: the server's drainage check and poller memory are shortened here
 * (minutes by default), which no other test file should see.
 */
const EventType = temporal.api.enums.v1.EventType;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const V2_WORKFLOWS = join(__dirname, '..', 'deploy', 'v2-workflows.ts');
/** Each step waits on conditions, never on time; this only bounds a step that hangs. */
const STEP_TIMEOUT_MS = 600_000;

let server: TemporalDevServer;
let env: BackupTestEnv;
let deploy: DeployClient;
let recoveries: RecoveryClient;
let stopV1: () => Promise<void>;
let v2BundlePath: string;
const deploymentName = `deploy-test-${randomBytes(4).toString('hex')}`;
const versioned = (buildId: string, bundle?: string) => ({
  TEMPORAL_WORKER_VERSIONING: 'on',
  TEMPORAL_DEPLOYMENT_NAME: deploymentName,
  TEMPORAL_BUILD_ID: buildId,
  ...(bundle ? { WORKER_WORKFLOW_BUNDLE: bundle } : {}),
});
const workerConverter = () => backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }), { worker: true });

/** Promotes once the build's workers have polled (the server knows a version from its first poll), replaying unversioned runs against `code`. */
function promoteWhenPolled(buildId: string, code: ReplayCode = { workflowsPath: WORKFLOWS_PATH }) {
  return eventually(`build ${buildId} to be promoted`, () =>
    deploy.promote(buildId, { replay: { code, dataConverter: workerConverter() } }).catch((error: unknown) => {
      if (error instanceof DeployVersionNotFoundError) return undefined;
      // The server knows the build's pollers queue by queue: until its workers have polled every task
      // queue of the current version it refuses (seen in CI on a loaded machine); that is "not yet".
      if (error instanceof Error && /missing active task queues/.test(error.message)) return undefined;
      throw error;
    }),
  );
}

/** The `backup` CLI as an operator runs it, against this file's server and deployment. */
function cli(...args: string[]) {
  const cliEnv = { ...process.env, TEMPORAL_ADDRESS: server.address, PAYLOAD_CODEC_KEYS: inject('codecKeys'), TEMPORAL_DEPLOYMENT_NAME: deploymentName };
  return promisify(execFile)('npx', ['tsx', 'client/cli.ts', ...args], { env: cliEnv, timeout: 120_000 });
}

async function history(workflowId: string, runId?: string) {
  return env.backups.temporal.workflow.getHandle(workflowId, runId).fetchHistory();
}

/** The build of every workflow task a run completed, in order. */
function buildsOf(events: HistoryEvent[]): string[] {
  return events
    .map((event) => event.workflowTaskCompletedEventAttributes)
    .filter((attributes) => attributes !== null && attributes !== undefined)
    .map((attributes) => attributes.deploymentVersion?.buildId ?? attributes.workerDeploymentVersion ?? '');
}

/** Any workflow task that failed: a nondeterminism error shows up as one. */
function failedTasks(events: HistoryEvent[]) {
  return events.filter((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED).map((event) => event.workflowTaskFailedEventAttributes?.cause);
}

async function pinnedTo(workflowId: string): Promise<string | undefined> {
  const description = await env.backups.temporal.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
  const versioning = description.workflowExecutionInfo?.versioningInfo;
  return versioning?.versioningOverride?.pinned?.version?.buildId ?? versioning?.deploymentVersion?.buildId ?? undefined;
}

describe('Worker Versioning: deploy a build that would not replay the old one', () => {
  // The users of each kind of version-1 run.
  const users = { completed: '', inFlight: '', parked: '', recovery: '', fresh: '' };
  let inFlightRule: number;
  let parkedRule: number;
  let recoveryRule: number;

  beforeAll(async () => {
    server = await startTemporalDevServer({
      logFile: join(inject('runDir'), `temporal-deploy-${deploymentName}.log`),
      dynamicConfig: {
        // A version's drainage is checked this soon after it stops being current, then this often
        // (3 minutes each by default).
        'matching.wv.VersionDrainageStatusVisibilityGracePeriod': '1s',
        'matching.wv.VersionDrainageStatusRefreshInterval': '1s',
        // Workers count as polling for this long after their last poll (5 minutes by default),
        // and a long poll is answered empty after 2 s, so a running worker always counts.
        'matching.PollerHistoryTTL': '8s',
        'matching.longPollExpirationInterval': '2s',
      },
    });
    env = await createBackupTestEnv({ temporalAddress: server.address });
    deploy = new DeployClient(env.backups.temporal, deploymentName, env.taskQueue);
    recoveries = approvingRecoveryClient(env.backups.temporal, env.taskQueue);
    stopV1 = await env.startWorker(versioned('v1'));
    v2BundlePath = join(inject('runDir'), `workflow-bundle-${deploymentName}-v2.js`);
    const { code } = await bundleWorkflowCode({
      workflowsPath: V2_WORKFLOWS,
      failureConverterPath: FAILURE_CONVERTER_PATH,
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
    });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(v2BundlePath, code);
  }, 300_000);

  afterAll(async () => {
    await env?.close();
    await server?.stop();
  });

  it('the first promote replays the runs of unversioned workers (they move to the new build): refused for code that would not replay them', { timeout: STEP_TIMEOUT_MS }, async () => {
    const stopUnversioned = await env.startWorker({ TEMPORAL_WORKER_VERSIONING: 'off' });
    const userId = env.seedUser('unversioned-parked');
    const rule = env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId }).id;
    await env.backups.startBackupWorkflow(userId);
    expect((await waitUntilParked(env.backups, userId)).step).toBe('MARK');
    // Visibility lists a run shortly after it starts: the promote's check reads it from there.
    await eventually('the unversioned run to be listed', async () => ((await deploy.status()).unversionedOpenRuns === 1 ? true : undefined));
    const refused = (await promoteWhenPolled('v1', { bundlePath: v2BundlePath }).catch((error: unknown) => error)) as Error;
    expect(refused).toBeInstanceOf(DeployUnversionedRunsError);
    expect(refused.message).toContain(backupWorkflowId(userId));
    expect(refused.message).toContain('transition-versioned-1');
    expect((await deploy.status()).currentBuildId).toBeUndefined();
    // With code that replays them (this checkout's), the promote goes through; the parked run moves to v1 when retried.
    expect(await promoteWhenPolled('v1')).toMatchObject({ deploymentName, currentBuildId: 'v1' });
    await stopUnversioned();
    env.simulator.faults.remove(rule);
    await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    const builds = buildsOf((await history(backupWorkflowId(userId))).events ?? []);
    expect(builds.at(-1)).toBe('v1');
    expect(failedTasks((await history(backupWorkflowId(userId))).events ?? [])).toEqual([]);
  });

  it('version 1 is current: backups complete, one stays in flight, one parks, a recovery parks', { timeout: STEP_TIMEOUT_MS }, async () => {
    const status = await deploy.status();
    expect(status).toMatchObject({ deploymentName, currentBuildId: 'v1' });

    users.completed = env.seedUser('v1-completed');
    await env.backups.startBackupWorkflow(users.completed);
    expect((await env.backups.waitForBackup(users.completed)).status).toBe('COMPLETED');

    // A backup held in flight at MARK by a transient fault (retried without end, never parked).
    users.inFlight = env.seedUser('v1-in-flight');
    inFlightRule = env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 503, userId: users.inFlight }).id;
    await env.backups.startBackupWorkflow(users.inFlight);
    await eventually('the in-flight backup to be retrying MARK', async () => (env.simulator.faults.list().find((rule) => rule.id === inFlightRule)!.fired > 0 ? true : undefined));

    // A backup parked at STORE (a permanent refusal).
    users.parked = env.seedUser('v1-parked');
    parkedRule = env.simulator.faults.add({ route: 'storeCipherText', kind: 'status', status: 401, body: 'Incorrect API key format', userId: users.parked }).id;
    await env.backups.startBackupWorkflow(users.parked);
    expect((await waitUntilParked(env.backups, users.parked)).step).toBe('STORE');

    // A recovery parked at HAND_OVER (the backend refuses the new signing shares).
    users.recovery = env.seedUser('v1-recovery');
    await env.backups.startBackupWorkflow(users.recovery);
    await env.backups.waitForBackup(users.recovery);
    recoveryRule = env.simulator.faults.add({ route: 'signingShares', kind: 'status', status: 422, userId: users.recovery }).id;
    await recoveries.startRecovery(users.recovery, { freshBackup: false });
    await eventually('the recovery to park', async () => ((await recoveries.getRecoveryStatus(users.recovery)).status === 'NEEDS_ATTENTION' ? true : undefined));

    expect((await env.backups.getBackupStatus(users.inFlight)).status).toBe('RUNNING');
    for (const userId of [users.completed, users.inFlight, users.parked]) {
      expect(new Set(buildsOf((await history(backupWorkflowId(userId))).events ?? []))).toEqual(new Set(['v1']));
    }
    // Three open runs pinned to v1, as visibility (and so the server's drainage check) sees them;
    // the same runs by the version search attribute, and none without a version.
    await eventually('visibility to count the open v1 runs', async () => ((await deploy.openPinnedRuns('v1')) === 3 ? true : undefined));
    const byVersion = await env.backups.temporal.workflowService.countWorkflowExecutions({
      namespace: 'default',
      query: `TemporalWorkerDeploymentVersion = '${deploymentName}:v1' AND ExecutionStatus = 'Running'`,
    });
    expect(Number(byVersion.count)).toBe(3);
    expect((await deploy.status()).unversionedOpenRuns).toBe(0);
    // Two of them parked (what move-parked looks at), by their BackupStatus in visibility.
    await eventually('visibility to list the two parked v1 runs', async () => {
      const { count } = await env.backups.temporal.workflowService.countWorkflowExecutions({ namespace: 'default', query: deploy.parkedRunsQuery('v1') });
      return Number(count) === 2 ? true : undefined;
    });
  });

  it('version 2 does not replay version 1 backups (a nondeterminism error), but does replay its recoveries', { timeout: STEP_TIMEOUT_MS }, async () => {
    const options = { workflowBundle: { codePath: v2BundlePath }, dataConverter: workerConverter(), replayName: 'v2-proof' };
    const completed = await history(backupWorkflowId(users.completed));
    await expect(Worker.runReplayHistory(options, completed, backupWorkflowId(users.completed))).rejects.toBeInstanceOf(DeterminismViolationError);
    // The same history replays against version 1's code: the failure is the v2 change, not the replay.
    await Worker.runReplayHistory({ ...options, workflowBundle: { codePath: inject('workflowBundlePath') }, replayName: 'v1-proof' }, completed, backupWorkflowId(users.completed));
    await Worker.runReplayHistory(options, await history(`recover-${users.recovery}`), `recover-${users.recovery}`);
  });

  it('after promote, new backups run on version 2; version 1 cannot be retired while its runs are open', { timeout: STEP_TIMEOUT_MS }, async () => {
    await env.startWorker(versioned('v2', v2BundlePath));
    expect((await promoteWhenPolled('v2')).currentBuildId).toBe('v2');
    // The deployment's summary of v1 follows its version record (asynchronously, in the server).
    const v1 = await eventually('v1 to show as draining', async () => (await deploy.status()).versions.find((version) => version.buildId === 'v1' && version.role === 'draining'));
    expect(v1.openPinnedRuns).toBe(3);

    users.fresh = env.seedUser('v2-fresh');
    await env.backups.startBackupWorkflow(users.fresh);
    expect((await env.backups.waitForBackup(users.fresh)).status).toBe('COMPLETED');
    const fresh = (await history(backupWorkflowId(users.fresh))).events ?? [];
    expect(new Set(buildsOf(fresh))).toEqual(new Set(['v2']));
    // It ran version 2's code: the timer before step 1.
    expect(fresh.some((event) => event.eventType === EventType.EVENT_TYPE_TIMER_STARTED)).toBe(true);

    await expect(deploy.retire('v1')).rejects.toBeInstanceOf(DeployVersionInUseError);
    await expect(deploy.retire('v2')).rejects.toBeInstanceOf(DeployVersionIsCurrentError);

    // The same through the CLI: the status as JSON, and a refusal with exit status 2 and what to do.
    const status = JSON.parse((await cli('--json', 'deploy', 'status')).stdout) as { currentBuildId: string; versions: { buildId: string; role: string }[] };
    expect(status.currentBuildId).toBe('v2');
    expect(status.versions.map((version) => [version.buildId, version.role])).toEqual([
      ['v1', 'draining'],
      ['v2', 'current'],
    ]);
    const refused = (await cli('deploy', 'retire', '--build-id', 'v1').catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('backup: build v1 still has 3 open run(s) pinned to it: keep its workers until they finish');
  });

  it('move-parked moves the parked recovery (it replays on version 2) and refuses the parked backup with a typed error', { timeout: STEP_TIMEOUT_MS }, async () => {
    const move = (dryRun: boolean): Promise<MoveReport> => deploy.moveParked({ from: 'v1', to: 'v2', code: { bundlePath: v2BundlePath }, dataConverter: workerConverter(), dryRun });
    const dry = await move(true);
    expect(dry.moved.map((run) => run.workflowId)).toEqual([`recover-${users.recovery}`]);
    expect(await pinnedTo(`recover-${users.recovery}`)).toBe('v1');

    const report = await move(false);
    expect(report.moved).toEqual([expect.objectContaining({ workflowId: `recover-${users.recovery}`, workflowType: 'recoverWallet' })]);
    // The parked backup does not replay on v2; the one in flight is not parked, so not a candidate.
    expect(report.refused.map((error) => error.workflowId)).toEqual([backupWorkflowId(users.parked)]);
    const refusal = report.refused[0]!;
    expect(refusal).toBeInstanceOf(RunNotReplayableError);
    expect((refusal as RunNotReplayableError).replayError.name).toBe('DeterminismViolationError');
    expect(refusal.message).toContain('does not replay against build v2');
    expect(await pinnedTo(`recover-${users.recovery}`)).toBe('v2');
    expect(await pinnedTo(backupWorkflowId(users.parked))).toBe('v1');
    await eventually('visibility to count two open v1 runs', async () => ((await deploy.openPinnedRuns('v1')) === 2 ? true : undefined));
  });

  it('the moved recovery completes on version 2; the version-1 backups complete on version 1; no run had a nondeterminism error', { timeout: STEP_TIMEOUT_MS }, async () => {
    const movedAt = ((await history(`recover-${users.recovery}`)).events ?? []).length;
    env.simulator.faults.remove(recoveryRule);
    await recoveries.retryRecovery(users.recovery, 'deploy-test');
    expect((await recoveries.waitForRecovery(users.recovery)).status).toBe('COMPLETED');
    const recovery = (await history(`recover-${users.recovery}`)).events ?? [];
    expect(new Set(buildsOf(recovery.slice(0, movedAt)))).toEqual(new Set(['v1']));
    expect(new Set(buildsOf(recovery.slice(movedAt)))).toEqual(new Set(['v2']));

    env.simulator.faults.remove(parkedRule);
    await env.backups.retryBackup(users.parked, operatorSigner('ops-mallory'));
    env.simulator.faults.remove(inFlightRule);
    for (const userId of [users.parked, users.inFlight]) {
      expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    }

    for (const userId of [users.completed, users.inFlight, users.parked, users.recovery]) {
      const events = (await history(backupWorkflowId(userId))).events ?? [];
      expect(new Set(buildsOf(events)), userId).toEqual(new Set(['v1']));
      expect(failedTasks(events), userId).toEqual([]);
    }
    for (const workflowId of [backupWorkflowId(users.fresh), `recover-${users.recovery}`]) {
      expect(failedTasks((await history(workflowId)).events ?? []), workflowId).toEqual([]);
    }
  });

  it('version 1 drains; retire waits for its workers to stop, then deletes it', { timeout: STEP_TIMEOUT_MS }, async () => {
    await eventually(
      'v1 to drain',
      async () => {
        const v1 = (await deploy.status()).versions.find((version) => version.buildId === 'v1');
        return v1?.openPinnedRuns === 0 && v1.drainage === 'drained' ? v1 : undefined;
      },
      120_000,
    );
    await expect(deploy.retire('v1')).rejects.toBeInstanceOf(DeployVersionHasPollersError);

    await stopV1();
    await eventually(
      'retire of v1 once its workers stopped polling',
      () =>
        deploy.retire('v1').then(
          () => true,
          (error: unknown) => {
            if (error instanceof DeployVersionHasPollersError || error instanceof DeployVersionNotDrainedError) return undefined;
            throw error;
          },
        ),
      120_000,
    );
    const after = await deploy.status();
    expect(after.versions.map((version) => version.buildId)).toEqual(['v2']);
    expect(after.currentBuildId).toBe('v2');
  });
});
