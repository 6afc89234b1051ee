import { z } from 'zod';
import { describeSettings, selfManagedSchema } from './custodian-webhook';
import { faultRuleProblems, faultRuleSchema } from './fault-rules';
import { makeLimiters } from './route-pipeline';
import type { SimulatorContext } from './simulator-context';

/** The admin API (loopback only unless `openAdmin`): seeding and keys, faults, the mode and rate limits, inspection. */
export function registerAdminRoutes(ctx: SimulatorContext): void {
  registerUserAdmin(ctx);
  registerFaultAdmin(ctx);
  registerSelfManagedAdmin(ctx);
  registerRateLimitAdmin(ctx);
}

const seedSchema = z.object({
  userIds: z.array(z.string().min(1)).optional(),
  count: z.number().int().min(1).max(100_000).optional(),
  prefix: z.string().default('user-'),
});

/** Seeding users, listing and inspecting them, revoking, restoring and rotating their API keys. */
function registerUserAdmin({ app, state }: SimulatorContext): void {
  app.post('/admin/users', async (request, reply) => {
    const parsed = seedSchema.safeParse(request.body ?? {});
    if (!parsed.success) return reply.code(400).send({ message: `bad fault rule: ${faultRuleProblems(parsed.error)}` });
    const ids = parsed.data.userIds ?? Array.from({ length: parsed.data.count ?? 1 }, (_, i) => `${parsed.data.prefix}${i + 1}`);
    for (const id of ids) state.seedUser(id);
    return { userIds: ids };
  });
  app.get('/admin/users', async () => ({
    users: state.users().map((client) => ({
      userId: client.userId,
      clientId: client.clientId,
      pairs: client.wallets.flatMap((wallet) => wallet.backupSharePairs).length,
    })),
  }));
  app.get('/admin/users/:userId', async (request, reply) => {
    const client = state.user((request.params as { userId: string }).userId);
    if (!client) return reply.code(404).send({ message: 'unknown user' });
    // Everything, less the custodian shares: per pair, `custodian` says whether it was delivered.
    return state.adminView(client);
  });
  app.post('/admin/users/:userId/api-key', async (request, reply) => {
    const client = state.user((request.params as { userId: string }).userId);
    const action = (request.body as { action?: string } | undefined)?.action;
    if (!client) return reply.code(404).send({ message: 'unknown user' });
    if (action === 'revoke') client.apiKeyRevoked = true;
    else if (action === 'restore') client.apiKeyRevoked = false;
    else if (action === 'rotate') state.rotateKey(client);
    else return reply.code(400).send({ message: 'action must be revoke, restore or rotate' });
    return { userId: client.userId, revoked: client.apiKeyRevoked };
  });
}

/** The fault rules, and the calls received per route. */
function registerFaultAdmin({ app, faults, calls }: SimulatorContext): void {
  app.get('/admin/faults', async () => ({ rules: faults.list(), fired: faults.log.length }));
  app.post('/admin/faults', async (request, reply) => {
    const parsed = faultRuleSchema.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send({ message: `bad fault rule: ${faultRuleProblems(parsed.error)}` });
    return faults.add(parsed.data);
  });
  app.delete('/admin/faults', async () => {
    faults.clear();
    return { rules: [] };
  });
  app.get('/admin/calls', async () => calls);
}

/** Self-Managed Backups: the mode, and every call made to the webhook (no share, no secret). */
function registerSelfManagedAdmin(ctx: SimulatorContext): void {
  const { app, webhook, live } = ctx;
  app.get('/admin/self-managed', async () => ({ selfManaged: describeSettings(live.selfManaged) }));
  app.put('/admin/self-managed', async (request, reply) => {
    const parsed = selfManagedSchema.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send({ message: `bad fault rule: ${faultRuleProblems(parsed.error)}` });
    live.selfManaged = ctx.webhookSettings(parsed.data);
    return { selfManaged: describeSettings(live.selfManaged) };
  });
  app.delete('/admin/self-managed', async () => {
    live.selfManaged = undefined;
    return { selfManaged: null };
  });
  app.get('/admin/webhook-deliveries', async (request) => {
    const { userId } = request.query as { userId?: string };
    return { deliveries: userId === undefined ? webhook.records : webhook.records.filter((record) => record.userId === userId) };
  });
  app.delete('/admin/webhook-deliveries', async () => {
    webhook.records.length = 0;
    return { deliveries: [] };
  });
}

/** Portal's rate limits, set or lifted (null) at run time. */
function registerRateLimitAdmin({ app, live }: SimulatorContext): void {
  app.put('/admin/rate-limits', async (request, reply) => {
    const parsed = z
      .object({ enclavePerMinute: z.number().int().min(1), clientPerMinute: z.number().int().min(1) })
      .nullable()
      .safeParse(request.body ?? null);
    if (!parsed.success) return reply.code(400).send({ message: `bad fault rule: ${faultRuleProblems(parsed.error)}` });
    live.limiters = parsed.data ? makeLimiters(parsed.data) : undefined;
    return { rateLimits: parsed.data };
  });
}
