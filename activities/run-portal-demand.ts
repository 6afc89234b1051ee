import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { portalDemandOfPriority, type PortalDemand } from '../contracts/run-priority';

/** How long a run's class is remembered (a run's priority does not change unless an operator changes it). */
const REMEMBER_MS = 10 * 60_000;
/** Runs remembered at most, per worker process. */
const MAX_REMEMBERED = 10_000;

/**
 * Whom the running activity serves at Portal's limiter (contracts/run-priority.ts). Its task's
 * priority when the server hands one over; the dev server (1.29.1) hands an activity none, at
 * least when it dispatches it eagerly (test/workflows/run-priorities.test.ts found it so), so then
 * the run's own priority, read once per run by describe and remembered. Either comes through
 * Temporal and goes through portalDemandOfPriority, which trusts nothing; no activity, no client,
 * or a failed describe is batch (the class without precedence), and a failure is not remembered.
 */
export class RunPortalDemand {
  private readonly remembered = new Map<string, { demand: PortalDemand; until: number }>();
  private temporal: Client | undefined;

  /** The worker's client, once it exists (it is made after the activities' dependencies). */
  connect(temporal: Client): void {
    this.temporal = temporal;
  }

  async current(): Promise<PortalDemand> {
    let info: Context['info'];
    try {
      info = Context.current().info;
    } catch {
      return 'batch';
    }
    if (info.priority?.priorityKey !== undefined && info.priority.priorityKey !== null) return portalDemandOfPriority(info.priority);
    const run = info.workflowExecution;
    if (!run || !this.temporal) return 'batch';
    const known = this.remembered.get(run.runId);
    if (known && known.until > Date.now()) return known.demand;
    let demand: PortalDemand;
    try {
      demand = portalDemandOfPriority((await this.temporal.workflow.getHandle(run.workflowId, run.runId).describe()).priority);
    } catch {
      return 'batch';
    }
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(run.runId, { demand, until: Date.now() + REMEMBER_MS });
    return demand;
  }
}
