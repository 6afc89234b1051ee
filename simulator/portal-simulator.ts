import Fastify, { type FastifyInstance } from 'fastify';
import { registerAdminRoutes } from './admin-routes';
import { registerBackendRoutes } from './backend-routes';
import { registerClientRoutes } from './client-routes';
import { CustodianWebhook, type SelfManagedOptions, type WebhookCallRecord } from './custodian-webhook';
import { registerEnclaveRoutes } from './enclave-routes';
import { FaultInjector } from './fault-rules';
import { PortalState } from './portal-state';
import { guardNonPortalRoutes, makeLimiters, routePipeline } from './route-pipeline';
import { webhookSettingsFor } from './self-managed-flow';
import type { SimulatorContext } from './simulator-context';
import type { PortalSimulatorOptions } from './simulator-options';

export type { PortalSimulatorOptions } from './simulator-options';

export interface PortalSimulator {
  app: FastifyInstance;
  state: PortalState;
  faults: FaultInjector;
  url: string;
  /** Requests received per route (before faults), for tests and benchmarks; the webhook routes count requests sent. */
  calls: Record<string, number>;
  /** Every call made to the custodian-share webhook (never a share); also `GET /admin/webhook-deliveries`. */
  webhookDeliveries: WebhookCallRecord[];
  /** Switches to Self-Managed mode (or back to Portal-Managed with undefined), like `PUT/DELETE /admin/self-managed`. */
  setSelfManaged(config: SelfManagedOptions | undefined): void;
  close(): Promise<void>;
}

/**
 * The Portal simulator: Portal's Enclave MPC API and client API routes as shared/portal-api.md
 * describes them, plus the company-backend credentials route, an admin API for seeding, fault
 * injection and inspection. One server plays both hosts. The admin and backend routes answer only
 * loopback callers unless `openAdmin` / `openBackend` say otherwise.
 */
export async function startPortalSimulator(options: PortalSimulatorOptions = {}): Promise<PortalSimulator> {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 1024 * 1024, forceCloseConnections: true });
  const faults = new FaultInjector(options.seed ?? 1);
  const calls: Record<string, number> = {};
  const webhookSettings = (config: SelfManagedOptions | undefined) => webhookSettingsFor(options, config);
  const shared = {
    app,
    options,
    state: new PortalState(),
    faults,
    calls,
    webhook: new CustodianWebhook(faults, calls),
    live: { selfManaged: webhookSettings(options.selfManaged), limiters: options.rateLimits ? makeLimiters(options.rateLimits) : undefined },
    webhookSettings,
  };
  const ctx: SimulatorContext = { ...shared, route: routePipeline(shared) };

  // The gate first: it must see every route registered after it.
  guardNonPortalRoutes(app, options);
  registerEnclaveRoutes(ctx);
  registerClientRoutes(ctx);
  registerBackendRoutes(ctx);
  registerAdminRoutes(ctx);
  app.get('/health', async () => ({ ok: true }));

  // Before the server waits for requests in flight: abort their calls to the webhook.
  app.addHook('preClose', async () => ctx.webhook.close());
  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  return {
    app,
    state: ctx.state,
    faults,
    url: address,
    calls,
    webhookDeliveries: ctx.webhook.records,
    setSelfManaged: (config) => {
      ctx.live.selfManaged = webhookSettings(config);
    },
    close: () => app.close(),
  };
}
