import type { BackupTestEnv } from './backup-test-env';

/** A user's pairs by status at the simulator, and how often any one was marked stored (the peers' crash checks). */
export function portalView(env: BackupTestEnv, userId: string) {
  const user = env.simulator.state.user(userId)!;
  const pairs = user.wallets.flatMap((wallet) => wallet.backupSharePairs);
  const marks = new Map<string, number>();
  for (const event of user.markEvents) for (const id of event.pairIds) marks.set(id, (marks.get(id) ?? 0) + 1);
  return {
    completed: pairs.filter((pair) => pair.status === 'completed').map((pair) => pair.id).sort(),
    incomplete: pairs.filter((pair) => pair.status === 'incomplete').map((pair) => pair.id).sort(),
    maxMarks: Math.max(0, ...marks.values()),
  };
}
