/**
 * A probe for test/deploy/continue-as-new-probe.ts: a run that waits for a signal, then continues
 * as new with `initialVersioningBehavior: 'AUTO_UPGRADE'`, as the batches, drills and rotations
 * do; the next run waits for the signal again and ends. Test-only.
 */
import { condition, defineSignal, makeContinueAsNewFunc, setHandler } from '@temporalio/workflow';

export const proceed = defineSignal('proceed');

export async function continueAsNewProbe(round: number): Promise<number> {
  let go = false;
  setHandler(proceed, () => {
    go = true;
  });
  await condition(() => go);
  if (round >= 1) return round;
  return makeContinueAsNewFunc<typeof continueAsNewProbe>({ initialVersioningBehavior: 'AUTO_UPGRADE' })(round + 1);
}
