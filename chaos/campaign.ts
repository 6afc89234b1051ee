import { mkdirSync } from 'node:fs';
import { SeededRandom } from '../simulator/seeded-random';
import { BackupDriver } from './backup-driver';
import type { CampaignContext } from './campaign-context';
import { campaignOptionsSchema, type CampaignOptionsInput } from './campaign-options';
import { writeReport, type CampaignReport } from './campaign-report';
import { startCampaignStack } from './campaign-stack';
import { FaultSchedule, Watchdog } from './fault-loop';
import { armPortalFaults, chooseUsers, InfraFaultInjector } from './fault-schedule';
import { resetUnansweredCalls, sleep } from './resilient';
import { checkInvariants } from './verdict';

export { CLUSTER_FAULTS, stallsOf, summarize } from './campaign-report';
export type { CampaignReport, ClusterFault, InfraFault, StallFigures } from './campaign-report';

/**
 * A fault campaign: N backups over real servers while workers are SIGKILLed, Temporal and Vault
 * are restarted, Vault is cut off through a TCP proxy, Portal misbehaves per request and some
 * users' keys are revoked mid-run; then every invariant is checked and counted.
 *
 * The parts, in order: the stack (campaign-stack.ts), the users and Portal faults and the process
 * faults (fault-schedule.ts, fault-loop.ts with its watchdog), the backups, rotation and recoveries
 * (backup-driver.ts), the invariants (verdict.ts) and the report (campaign-report.ts). The seeded
 * draws happen in that order, so a seed replays the same schedule.
 */
export async function runCampaign(input: CampaignOptionsInput): Promise<CampaignReport> {
  const options = campaignOptionsSchema.parse(input);
  resetUnansweredCalls();
  mkdirSync(options.runDir, { recursive: true });
  const started = Date.now();
  const ctx: CampaignContext = {
    options,
    random: new SeededRandom(options.seed),
    say: (line: string) => options.quiet || process.stdout.write(`[chaos] ${line}\n`),
    started,
    deadline: started + options.timeoutMs,
    cleanups: [],
    done: false,
  };
  try {
    const stack = await startCampaignStack(ctx);
    const users = chooseUsers(ctx, stack.simulator);
    armPortalFaults(ctx, stack.simulator, users.userIds);

    const injector = new InfraFaultInjector(ctx, stack);
    const schedule = new FaultSchedule(ctx);
    const watchdog = new Watchdog(ctx);
    const driver = new BackupDriver(ctx, stack.clients, stack.simulator, users, schedule, watchdog);
    const faultLoop = schedule.run(injector, driver, watchdog);

    await driver.runBackups();
    await driver.waitForRotation();
    await driver.runRecoveries();

    ctx.done = true;
    await faultLoop;
    await stack.kms.proxy.setMode('pass');
    if (driver.timedOut) {
      // Open backups would go on changing Portal and the database while they are checked.
      await stack.workers.killAll();
      await sleep(1_000);
    } else {
      ctx.say('all backups ended; checking invariants');
    }
    const verdict = await checkInvariants(ctx, stack, users, driver);
    return writeReport(ctx, stack, users, driver, injector, verdict);
  } finally {
    ctx.done = true;
    for (const cleanup of ctx.cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}
