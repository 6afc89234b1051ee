import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { join } from 'node:path';
import { DeployClient } from '../../client/deploy-client';
import { DeployVersionNotFoundError } from '../../client/deploy-errors';
import { eventually } from '../support/backup-test-env';

export interface ContinueAsNewProbeResult {
  serverVersion: string;
  /** The build that ran the first run's workflow tasks (v1, current when it started). */
  firstRun: string[];
  /** The build that ran the run it continued as (v2 was current by then). */
  nextRun: string[];
}

/**
 * Does the server honour `initialVersioningBehavior: 'AUTO_UPGRADE'` on continue-as-new of a
 * PINNED run? Starts a probe on v1 (current), makes v2 current, lets it continue as new, and reads
 * which build ran each run's workflow tasks. Two in-process versioned workers of the same code.
 */
export async function probeContinueAsNewUpgrade(address: string): Promise<ContinueAsNewProbeResult> {
  const taskQueue = `can-probe-${randomBytes(4).toString('hex')}`;
  const deploymentName = `can-probe-${randomBytes(4).toString('hex')}`;
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const deploy = new DeployClient(client, deploymentName);
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(__dirname, 'continue-as-new-workflows.ts'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
  });
  const stops: (() => Promise<void>)[] = [];
  const startWorker = async (buildId: string) => {
    const native = await NativeConnection.connect({ address });
    const worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowBundle: { code },
      workerDeploymentOptions: { useWorkerVersioning: true, version: { deploymentName, buildId }, defaultVersioningBehavior: 'PINNED' },
    });
    const running = worker.run();
    stops.push(async () => {
      worker.shutdown();
      await running;
      await native.close();
    });
  };
  const promote = (buildId: string) =>
    eventually(`${buildId} to be promoted`, () =>
      deploy.promote(buildId).catch((error: unknown) => (error instanceof DeployVersionNotFoundError ? undefined : Promise.reject(error))),
    );
  const builds = async (workflowId: string, runId: string) =>
    ((await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [])
      .map((event) => event.workflowTaskCompletedEventAttributes)
      .filter((attributes) => attributes !== null && attributes !== undefined)
      .map((attributes) => attributes.deploymentVersion?.buildId ?? attributes.workerDeploymentVersion ?? '');
  try {
    const { serverVersion } = await connection.workflowService.getSystemInfo({});
    await startWorker('v1');
    await promote('v1');
    const workflowId = `can-probe-${randomBytes(4).toString('hex')}`;
    const first = await client.workflow.start('continueAsNewProbe', { taskQueue, workflowId, args: [0] });
    await eventually('the first run to complete its first task', async () => ((await builds(workflowId, first.firstExecutionRunId)).length > 0 ? true : undefined));
    await startWorker('v2');
    await promote('v2');
    await first.signal('proceed');
    const next = await eventually('the run it continued as', async () => {
      const description = await client.workflow.getHandle(workflowId).describe();
      return description.runId !== first.firstExecutionRunId ? description.runId : undefined;
    });
    await eventually('the next run to complete its first task', async () => ((await builds(workflowId, next)).length > 0 ? true : undefined));
    await client.workflow.getHandle(workflowId, next).signal('proceed');
    await client.workflow.getHandle(workflowId, next).result();
    return { serverVersion: serverVersion ?? '', firstRun: await builds(workflowId, first.firstExecutionRunId), nextRun: await builds(workflowId, next) };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await connection.close();
  }
}
