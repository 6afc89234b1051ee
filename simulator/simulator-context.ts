import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CustodianWebhook, SelfManagedOptions, WebhookSettings } from './custodian-webhook';
import type { FaultInjector, RouteName } from './fault-rules';
import type { Outcome } from './outcomes';
import type { PortalSimulatorOptions } from './simulator-options';
import type { PortalState, SimClient } from './portal-state';
import type { SlidingWindowLimiter } from './rate-limiter';

export type Handler = (request: FastifyRequest, client: SimClient | undefined) => Outcome | Promise<Outcome>;
export type Limiters = { enclave: SlidingWindowLimiter; client: SlidingWindowLimiter };

/** What every route group of one simulator shares: its state, its faults, and what the admin API switches at run time. */
export interface SimulatorContext {
  app: FastifyInstance;
  options: PortalSimulatorOptions;
  state: PortalState;
  faults: FaultInjector;
  /** Requests received per route (before faults). */
  calls: Record<string, number>;
  webhook: CustodianWebhook;
  /** Switchable at run time (`/admin/self-managed`, `/admin/rate-limits`). */
  live: { selfManaged: WebhookSettings | undefined; limiters: Limiters | undefined };
  /** The webhook settings for a Self-Managed configuration (undefined: Portal-Managed). */
  webhookSettings(config: SelfManagedOptions | undefined): WebhookSettings | undefined;
  /** Wraps a Portal route's handler in the pipeline every such route goes through (route-pipeline.ts). */
  route(name: RouteName, auth: 'client' | 'backend', handler: Handler): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}
