/**
 * The floor of the benchmark: a bare workflow of four no-op activities, with the backup's activity
 * options. Bundled on its own for the benchmark's floor worker (bench/floor-worker.ts); never
 * registered on the production worker.
 */
import { proxyActivities } from '@temporalio/workflow';
import { STEP_OPTIONS } from '../contracts/step-timeouts';
import type { FloorActivities } from './floor-activities';

const steps = proxyActivities<FloorActivities>({ ...STEP_OPTIONS, retry: { initialInterval: '1 second', maximumInterval: '1 minute' } });

export async function floorWorkflow(input: { userId: string }): Promise<{ userId: string; steps: number }> {
  await steps.noop1(input.userId);
  await steps.noop2(input.userId);
  await steps.noop3(input.userId);
  await steps.noop4(input.userId);
  return { userId: input.userId, steps: 4 };
}
