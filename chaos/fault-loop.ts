import type { CampaignContext } from './campaign-context';
import type { InfraFault } from './infra-faults';
import { milestonesFor, randomKindsFor, type InfraFaultInjector } from './fault-schedule';
import { callsUnderWay, sleep } from './resilient';

/** A wait of the main loop longer than this is logged, with the calls under way, once a minute. */
const WATCHDOG_MS = 60_000;

/**
 * Where the main loop waits, for the watchdog in the fault loop: a campaign that hangs names what it
 * hangs on instead of going quiet until its timeout.
 */
export class Watchdog {
  private stage = { what: 'starting', since: Date.now() };
  private lastWarning = Date.now();

  constructor(private readonly ctx: CampaignContext) {}

  enter(what: string): void {
    this.stage = { what, since: Date.now() };
  }

  check(inFlight: Iterable<string>): void {
    const now = Date.now();
    if (now - this.stage.since <= WATCHDOG_MS || now - this.lastWarning <= WATCHDOG_MS) return;
    this.lastWarning = now;
    const calls = callsUnderWay(now);
    this.ctx.say(
      `watchdog: the main loop has waited on ${this.stage.what} for ${Math.round((now - this.stage.since) / 1000)} s; calls under way: ${calls.join(', ') || 'none'}; in flight: ${[...inFlight].join(', ')}`,
    );
  }
}

/** The milestone faults still to fire, and the kinds the random faults between them draw from. */
export class FaultSchedule {
  private readonly milestones: [number, InfraFault][];
  private readonly randomKinds: InfraFault[];

  constructor(private readonly ctx: CampaignContext) {
    this.milestones = milestonesFor(ctx.options);
    this.randomKinds = randomKindsFor(ctx.options);
  }

  /**
   * A milestone fault that is due holds new starts back until it fires: each one surely fires
   * while backups are open, however fast they end (the slices count on every kind firing).
   */
  milestoneDue(fractionEnded: number): boolean {
    return this.milestones[0] !== undefined && fractionEnded >= this.milestones[0][0];
  }

  /**
   * Until the run is done: each milestone fault when its share of backups has ended, and random
   * faults between them at exponential intervals (mean `meanFaultIntervalMs`); the watchdog looks
   * in every 200 ms.
   */
  async run(injector: InfraFaultInjector, backups: { fractionEnded(): number; inFlight: Iterable<string> }, watchdog: Watchdog): Promise<void> {
    const { ctx } = this;
    let nextRandomAt = this.nextRandomFaultAt();
    while (!ctx.done) {
      if (this.milestoneDue(backups.fractionEnded())) {
        await injector.inject(this.milestones.shift()![1]);
      } else if (Date.now() >= nextRandomAt) {
        await injector.inject(this.randomKinds[Math.floor(ctx.random.next() * this.randomKinds.length)]!);
        nextRandomAt = this.nextRandomFaultAt();
      }
      watchdog.check(backups.inFlight);
      await sleep(200);
    }
  }

  private nextRandomFaultAt(): number {
    return Date.now() + -Math.log(1 - this.ctx.random.next()) * this.ctx.options.meanFaultIntervalMs;
  }
}
