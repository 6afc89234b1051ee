import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConnectionLike } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../codec/data-converter';
import { WORKFLOWS_PATH } from '../worker/workflows-path';
import { startProcess, waitUntil, type ManagedProcess } from './managed-process';

const ROOT = join(__dirname, '..');

/** Bundles the workflow code once into `path`, for workers started with WORKER_WORKFLOW_BUNDLE. */
export async function writeWorkflowBundle(path: string): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    // Must match the workers' data converter: the sandbox encodes failures with it.
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
  });
  writeFileSync(path, code);
  return path;
}

/** The real worker entry point (worker/main.ts) as a child process, configured by `env`. */
export function spawnWorkerProcess(
  name: string,
  options: { env: NodeJS.ProcessEnv; logFile: string; nodeArgs?: string[] },
): ManagedProcess {
  return startProcess(name, process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', join(ROOT, 'worker', 'main.ts')], {
    logFile: options.logFile,
    env: options.env,
    cwd: ROOT,
  });
}

/** Waits until at least one worker polls `taskQueue`. */
export function waitForPollers(connection: ConnectionLike, taskQueue: string, exited?: Promise<unknown>, namespace = 'default') {
  return waitUntil(
    `a worker polling ${taskQueue}`,
    async () => ((await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue } })).pollers?.length ?? 0) > 0,
    120_000,
    exited,
  );
}
