/**
 * The benchmark's floor worker (a process of its own, so its CPU is measured apart): the bare
 * workflow of bench/floor-workflow.ts with the production worker's settings, no payload codec.
 * Env: TEMPORAL_ADDRESS, FLOOR_TASK_QUEUE, FLOOR_WORKFLOW_BUNDLE, WORKER_MAX_CONCURRENT_ACTIVITIES,
 * WORKER_MAX_CONCURRENT_WORKFLOW_TASKS.
 */
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createFloorActivities } from './floor-activities';

async function main(): Promise<void> {
  const env = process.env;
  Runtime.install({ logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never });
  const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS ?? 'localhost:7233' });
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue: env.FLOOR_TASK_QUEUE ?? 'bench-floor',
    workflowBundle: { codePath: env.FLOOR_WORKFLOW_BUNDLE! },
    activities: createFloorActivities(),
    shutdownGraceTime: 5_000,
    maxConcurrentActivityTaskExecutions: Number(env.WORKER_MAX_CONCURRENT_ACTIVITIES ?? 100),
    maxConcurrentWorkflowTaskExecutions: Number(env.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS ?? 40),
  });
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`floor worker failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
