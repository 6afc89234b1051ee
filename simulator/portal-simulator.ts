import { matchesAnySecret } from '../config/secret-check';
import { isIPv4 } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CURVES } from '../domain/curves';
import {
  CustodianWebhook,
  DEFAULT_WEBHOOK_TIMEOUT_MS,
  describeSettings,
  selfManagedSchema,
  type SelfManagedOptions,
  type WebhookCallRecord,
  type WebhookSettings,
} from './custodian-webhook';
import { FaultInjector, faultRuleSchema, type RouteName } from './fault-rules';
import { PortalState, sha256Hex, type SimBackupPair, type SimClient } from './portal-state';
import { SlidingWindowLimiter } from './rate-limiter';

export interface PortalSimulatorOptions {
  host?: string;
  port?: number;
  /** Seed of the fault injector's random choices. */
  seed?: number;
  /** If set, the company-backend routes require `Authorization: Bearer <token>`. */
  backendToken?: string;
  /**
   * Let non-loopback callers use the admin API (seeding, faults, key revocation, inspection of
   * every user's state). Off by default: anyone who reaches it can read and break everything.
   */
  openAdmin?: boolean;
  /**
   * Let non-loopback callers use the company-backend routes, which hand out users' API keys and
   * signing shares. Off by default; a worker in another container needs it (with a backendToken).
   */
  openBackend?: boolean;
  logger?: boolean;
  /**
   * Answer a mark of an already-completed pair with 400, as a stricter Portal might (the
   * contract does not say); the default accepts repeated marks.
   */
  rejectRepeatedMarks?: boolean;
  /** Portal's rate limits (requests per minute); off unless set. */
  rateLimits?: { enclavePerMinute: number; clientPerMinute: number };
  /**
   * Self-Managed Backups (shared/portal-api.md, "the custodian-share webhook"): `/v1/backup`
   * delivers each custodian share to `POST {webhookUrl}/backup`, then validates with
   * `POST {webhookUrl}/backup/fetch`; `/v1/recover` takes the custodian half from that fetch; the
   * client object shows `environment.backupWithPortalEnabled: false`. Unset: Portal-Managed.
   * Switchable at run time with `PUT` / `DELETE /admin/self-managed`. `timeoutMs` is the budget of
   * each call to the webhook (Portal's: 10 000).
   */
  selfManaged?: SelfManagedOptions;
  /**
   * The `backupMethod` sent to the webhook (and shown on the pairs made in Self-Managed mode). Which
   * value Portal sends for Enclave-API backups is not documented; `UNKNOWN` is Portal's "absent".
   */
  webhookBackupMethod?: string;
  /**
   * Count a 204 from `POST {webhookUrl}/backup` as success. Off by default: the contract's text asks
   * for 200 ("Answer 200 … otherwise the backup fails"), only the docs' example answers 204, and a
   * strict simulator catches a webhook that relies on the looser reading. Turn it on to model a
   * Portal that takes any 2xx. `/backup/fetch` must answer 200 in any case (it carries a body).
   */
  acceptWebhook204?: boolean;
  /**
   * How `/v1/backup` (and `/v1/recover`) answers when the webhook fails. Default: 500 with the flat
   * body `{"id": "FAILED_WEBHOOK", "message": "Unable to send backup share to configured webhook"}`.
   * The contract names the id and message, not the status; see WEBHOOK_FAILURE below.
   */
  webhookFailure?: { status?: number; id?: 'FAILED_WEBHOOK' | 'WEBHOOK_FAILED' };
  /**
   * Keep each custodian share in `state` after its delivery (never served by any route, never used
   * for recovery), for in-process test oracles such as a secret scan. Off: Portal keeps no copy.
   */
  retainCustodianShares?: boolean;
}

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

type Outcome = { status: number; body?: unknown };
type Handler = (request: FastifyRequest, client: SimClient | undefined) => Outcome | Promise<Outcome>;

const WRITABLE_BACKUP_STATUSES = ['STORED_CLIENT_BACKUP_SHARE', 'STORED_CLIENT_BACKUP_SHARE_KEY'];
const HANG_LIMIT_MS = 5 * 60_000;
const STATUS_IDS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  422: 'UNPROCESSABLE_ENTITY',
  500: 'INTERNAL_SERVER_ERROR',
  502: 'BAD_GATEWAY',
  503: 'SERVICE_UNAVAILABLE',
  504: 'GATEWAY_TIMEOUT',
};

function flatError(status: number, id: string, message: string): Outcome {
  return { status, body: { id, message } };
}

function nestedError(status: number, id: string, message: string): Outcome {
  return { status, body: { error: { id, message, code: status } } };
}

/**
 * The Portal simulator: Portal's Enclave MPC API and client API routes as shared/portal-api.md
 * describes them, plus the company-backend credentials route, an admin API for seeding, fault
 * injection and inspection. One server plays both hosts. The admin and backend routes answer only
 * loopback callers unless `openAdmin` / `openBackend` say otherwise.
 */
export async function startPortalSimulator(options: PortalSimulatorOptions = {}): Promise<PortalSimulator> {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 1024 * 1024, forceCloseConnections: true });
  const state = new PortalState();
  const faults = new FaultInjector(options.seed ?? 1);
  const calls: Record<string, number> = {};
  let limiters = options.rateLimits ? makeLimiters(options.rateLimits) : undefined;
  const webhook = new CustodianWebhook(faults, calls);
  const webhookSettings = (config: SelfManagedOptions | undefined): WebhookSettings | undefined => {
    if (!config) return undefined;
    const parsed = selfManagedSchema.parse(config);
    return {
      webhookUrl: parsed.webhookUrl,
      webhookSecret: parsed.webhookSecret,
      timeoutMs: parsed.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS,
      backupMethod: options.webhookBackupMethod ?? 'UNKNOWN',
      acceptWebhook204: options.acceptWebhook204 ?? false,
    };
  };
  let selfManaged = webhookSettings(options.selfManaged);
  const webhookFailure = (message: string): Outcome =>
    flatError(options.webhookFailure?.status ?? WEBHOOK_FAILURE.status, options.webhookFailure?.id ?? WEBHOOK_FAILURE.id, message);

  /**
   * Self-Managed `/v1/backup`, after the pairs are made: deliver each custodian share, then validate
   * with fetch. Any failure answers FAILED_WEBHOOK without the client shares, and the pairs stay
   * `incomplete`. Portal keeps no copy of the custodian shares afterwards, whatever the outcome.
   */
  async function deliverCustodianShares(
    settings: WebhookSettings,
    client: SimClient,
    response: Record<string, { id: string; share: string }>,
  ): Promise<Outcome> {
    const pairs = CURVES.map((curve) => state.findPair(client, response[curve]!.id)!);
    const context = { userId: client.userId, clientId: client.clientId };
    try {
      const delivered = await webhook.deliver(
        settings,
        context,
        pairs.map((pair) => ({ pairId: pair.id, curve: pair.curve, share: pair.custodianShare! })),
        (pairId) => {
          const pair = pairs.find((p) => p.id === pairId)!;
          pair.custodian.delivery = 'delivered';
          pair.custodian.deliveredAt = new Date().toISOString();
        },
      );
      if (!delivered.ok) {
        for (const pair of pairs) {
          if (pair.custodian.delivery === 'pending') pair.custodian.delivery = pair.id === delivered.failedPairId ? 'failed' : 'not-sent';
        }
        return webhookFailure(WEBHOOK_FAILURE.backupMessage);
      }
      // "Portal picks the one it needs": each share just delivered must come back exactly as sent.
      const sentShares = pairs.map((pair) => ({ id: pair.id, share: pair.custodianShare! }));
      const fetched = await webhook.fetchShares(settings, context, 'backup', pairs.map((pair) => pair.id), (shares) => {
        const held = new Set(shares);
        const missing = sentShares.filter((sent) => !held.has(sent.share)).map((sent) => sent.id);
        return missing.length > 0 ? `share of pair ${missing.join(', ')} missing` : undefined;
      });
      if (!fetched.ok) return webhookFailure(WEBHOOK_FAILURE.backupMessage);
      for (const pair of pairs) pair.custodian.validated = true;
      return { status: 200, body: response };
    } finally {
      if (!options.retainCustodianShares) for (const pair of pairs) delete pair.custodianShare;
    }
  }

  /**
   * Self-Managed `/v1/recover`: Portal holds no custodian share of a pair made in Self-Managed mode,
   * so it fetches them from the webhook and recognises each pair's by its digest. Pairs made in
   * Portal-Managed mode (before a switch) are in Portal's own storage and need no fetch.
   */
  async function custodianSharesForRecovery(client: SimClient, pairs: SimBackupPair[]): Promise<Outcome | undefined> {
    const delivered = pairs.filter((pair) => pair.custodian.mode === 'self-managed');
    if (delivered.length === 0) return undefined;
    const settings = selfManaged;
    if (!settings) return webhookFailure(`${WEBHOOK_FAILURE.recoverMessage}: no webhook is configured`);
    const context = { userId: client.userId, clientId: client.clientId };
    const fetched = await webhook.fetchShares(settings, context, 'recover', delivered.map((pair) => pair.id), (shares) => {
      const held = new Set(shares.map(sha256Hex));
      const missing = delivered.filter((pair) => !held.has(pair.custodian.sha256)).map((pair) => pair.id);
      return missing.length > 0 ? `share of pair ${missing.join(', ')} missing` : undefined;
    });
    return fetched.ok ? undefined : webhookFailure(WEBHOOK_FAILURE.recoverMessage);
  }

  // One gate for every non-Portal route. It matches the route that routing chose (not the raw
  // URL), so encoded or odd spellings of a path cannot slip past it; unmatched URLs 404 anyway.
  // The socket's peer, not request.ip: that would follow X-Forwarded-For if trustProxy were on.
  const guards = GUARDED_ROUTES.filter((guard) => !(guard.kind === 'admin' ? options.openAdmin : options.openBackend));
  app.addHook('onRequest', async (request, reply) => {
    const routeUrl = request.routeOptions.url;
    const guard = routeUrl === undefined ? undefined : guards.find((g) => routeUrl === g.prefix || routeUrl.startsWith(`${g.prefix}/`));
    if (!guard || isLoopback(request.socket.remoteAddress)) return;
    return reply.code(403).send({
      id: 'FORBIDDEN',
      message: `${guard.name} only answers loopback callers; start the simulator with ${guard.flag} to allow others`,
    });
  });

  /** Resolves the bearer key; undefined client plus an outcome when auth fails. */
  function authenticate(request: FastifyRequest): { client?: SimClient; failure?: Outcome } {
    const header = request.headers.authorization;
    if (!header) return { failure: { status: 401, body: 'Authorization header is missing' } };
    const match = /^Bearer (\S+)$/.exec(header);
    if (!match) return { failure: { status: 401, body: 'Incorrect API key format' } };
    const client = state.byKey(match[1]!);
    if (!client || client.apiKeyRevoked) return { failure: nestedError(401, 'UNAUTHORIZED', 'Invalid or revoked API key') };
    return { client };
  }

  function route(name: RouteName, auth: 'client' | 'backend', handler: Handler) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      calls[name] = (calls[name] ?? 0) + 1;
      let client: SimClient | undefined;
      let authFailure: Outcome | undefined;
      if (auth === 'client') {
        ({ client, failure: authFailure } = authenticate(request));
      } else if (options.backendToken && !matchesAnySecret(request.headers.authorization, [`Bearer ${options.backendToken}`])) {
        authFailure = { status: 401, body: { message: 'missing or wrong backend token' } };
      }
      const userId = client?.userId ?? (request.params as { userId?: string }).userId;

      const limiter = limiters && auth === 'client' ? (ENCLAVE_ROUTES.has(name) ? limiters.enclave : limiters.client) : undefined;
      const slot = limiter?.take(Date.now());
      if (slot && !slot.ok) {
        calls.rateLimited = (calls.rateLimited ?? 0) + 1;
        reply.header('retry-after', String(slot.retryAfterSeconds));
        return reply.code(429).send({ id: 'TOO_MANY_REQUESTS', message: 'Rate limit exceeded' });
      }

      for (const fault of faults.before(name, userId)) {
        if (fault.kind === 'latency') {
          await new Promise((resolve) => setTimeout(resolve, fault.latencyMs ?? 0));
          continue;
        }
        if (fault.kind === 'hang') {
          await waitForClose(request, fault.latencyMs ?? HANG_LIMIT_MS);
          if (request.raw.socket?.destroyed) return reply.hijack();
          return reply.code(504).send({ id: 'GATEWAY_TIMEOUT', message: 'simulated hang ended' });
        }
        if (fault.kind === 'rate-limit') {
          if (fault.retryAfterSeconds !== null) reply.header('retry-after', String(fault.retryAfterSeconds ?? 1));
          return reply.code(429).send(fault.body ?? { id: 'TOO_MANY_REQUESTS', message: 'Rate limit exceeded' });
        }
        if (fault.kind === 'html-error') {
          return reply
            .code(fault.status ?? 502)
            .type('text/html')
            .send('<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>');
        }
        const status = fault.status ?? 500;
        return reply.code(status).send(fault.body ?? { id: STATUS_IDS[status] ?? 'ERROR', message: `simulated ${status}` });
      }

      const outcome = authFailure ?? (await handler(request, client));
      const after = outcome.status < 300 ? faults.after(name, userId) : undefined;
      if (after?.kind === 'lost-response') {
        // The change above is committed; the caller never learns it.
        reply.hijack();
        request.raw.socket?.destroy();
        return;
      }
      if (after?.kind === 'malformed') {
        return reply.code(200).type('application/json').send('{"SECP256K1": {"id": "trunc');
      }
      reply.code(outcome.status);
      if (typeof outcome.body === 'string') reply.type('text/plain');
      return reply.send(outcome.body ?? '');
    };
  }

  // --- Enclave MPC API ---------------------------------------------------------------------
  app.post(
    '/v1/backup',
    route('backup', 'client', async (request, client) => {
      const body = request.body as { generateResponse?: unknown } | undefined;
      if (typeof body?.generateResponse !== 'string') {
        return flatError(400, 'BAD_REQUEST', 'generateResponse must be the /v1/generate response as a JSON string');
      }
      if (!sameSigningShares(body.generateResponse, state.currentSigningShares(client!))) {
        return flatError(400, 'BAD_REQUEST', "generateResponse does not hold this client's signing shares");
      }
      // The mode when the call arrived holds for the whole call, even if it is switched meanwhile.
      const settings = selfManaged;
      const response = state.createBackupPairs(client!, settings ? { selfManaged: true, backupMethod: settings.backupMethod } : {});
      if (!settings) return { status: 200, body: response };
      return deliverCustodianShares(settings, client!, response);
    }),
  );

  app.post(
    '/v1/recover',
    route('recover', 'client', async (request, client) => {
      const body = request.body as { backupResponse?: unknown } | undefined;
      if (typeof body?.backupResponse !== 'string') {
        return flatError(400, 'BAD_REQUEST', 'backupResponse must be the /v1/backup response as a JSON string');
      }
      let parsed: Record<string, { id?: unknown; share?: unknown }>;
      try {
        parsed = JSON.parse(body.backupResponse) as typeof parsed;
      } catch {
        return flatError(400, 'BAD_REQUEST', 'backupResponse is not valid JSON');
      }
      const pairs: SimBackupPair[] = [];
      for (const curve of CURVES) {
        const entry = parsed[curve];
        const pair = typeof entry?.id === 'string' ? state.findPair(client!, entry.id) : undefined;
        if (!pair || pair.curve !== curve || pair.share !== entry?.share) return flatError(400, 'BAD_REQUEST', `no backup share for ${curve} matches`);
        if (pair.status !== 'completed') return flatError(400, 'BAD_REQUEST', 'recover cannot run until backup succeeds');
        pairs.push(pair);
      }
      const custodianFailure = await custodianSharesForRecovery(client!, pairs);
      if (custodianFailure) return custodianFailure;
      return { status: 200, body: state.createSigningShares(client!) };
    }),
  );

  // --- Portal client API ---------------------------------------------------------------------
  const storeCipherText = route('storeCipherText', 'client', (request, client) => {
    const { pairId } = request.params as { pairId: string };
    const pair = state.findPair(client!, pairId);
    if (!pair) return nestedError(404, 'NOT_FOUND', 'Backup share pair not found');
    const body = request.body as { clientCipherText?: unknown } | undefined;
    if (typeof body?.clientCipherText !== 'string' || body.clientCipherText.length === 0) {
      return nestedError(400, 'BAD_REQUEST', 'clientCipherText must be a non-empty string');
    }
    pair.clientCipherText = body.clientCipherText;
    pair.storeCount += 1;
    return { status: 200 };
  });
  app.post('/api/v3/clients/me/backup-share-pairs/:pairId', storeCipherText);
  app.patch('/api/v3/clients/me/backup-share-pairs/:pairId', storeCipherText);

  app.get(
    '/api/v3/clients/me/backup-share-pairs/:pairId/cipher-text',
    route('getCipherText', 'client', (request, client) => {
      const { pairId } = request.params as { pairId: string };
      const pair = state.findPair(client!, pairId);
      if (!pair?.clientCipherText) return nestedError(404, 'NOT_FOUND', 'No cipher text stored for this backup share pair');
      return { status: 200, body: { cipherText: pair.clientCipherText } };
    }),
  );

  app.patch(
    '/api/v3/clients/me/backup-share-pairs',
    route('markPairs', 'client', (request, client) => {
      const body = request.body as { status?: unknown; backupSharePairIds?: unknown } | undefined;
      if (typeof body?.status !== 'string' || !WRITABLE_BACKUP_STATUSES.includes(body.status)) {
        return nestedError(400, 'BAD_REQUEST', `status must be one of ${WRITABLE_BACKUP_STATUSES.join(', ')}`);
      }
      const ids = body.backupSharePairIds;
      if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === 'string')) {
        return nestedError(400, 'BAD_REQUEST', 'backupSharePairIds must be a non-empty array of ids');
      }
      const pairs = ids.map((id: string) => state.findPair(client!, id));
      if (pairs.some((pair) => !pair)) return nestedError(404, 'NOT_FOUND', 'Backup share pair not found');
      if (options.rejectRepeatedMarks && pairs.some((pair) => pair!.status === 'completed')) {
        return nestedError(400, 'BAD_REQUEST', 'Backup share pair is already completed');
      }
      for (const pair of pairs) {
        pair!.status = 'completed';
        pair!.markCount += 1;
      }
      client!.markEvents.push({ at: new Date().toISOString(), status: body.status, pairIds: ids as string[] });
      return { status: 204 };
    }),
  );

  app.patch(
    '/api/v3/clients/me/signing-share-pairs',
    route('markSigningPairs', 'client', (request, client) => {
      const body = request.body as { status?: unknown; signingSharePairIds?: unknown } | undefined;
      if (body?.status !== 'STORED_CLIENT') return nestedError(400, 'BAD_REQUEST', 'status must be STORED_CLIENT');
      const ids = Array.isArray(body.signingSharePairIds) ? body.signingSharePairIds : [];
      const pairs = client!.wallets.flatMap((wallet) => wallet.signingSharePairs).filter((pair) => ids.includes(pair.id));
      if (pairs.length === 0 || pairs.length !== ids.length) return nestedError(404, 'NOT_FOUND', 'Signing share pair not found');
      for (const pair of pairs) pair.status = 'completed';
      return { status: 204 };
    }),
  );

  app.get(
    '/api/v3/clients/me',
    route('getClient', 'client', (_request, client) => ({
      status: 200,
      body: state.clientView(client!, { backupWithPortalEnabled: selfManaged === undefined }),
    })),
  );

  // --- The company's backend (credentials source), simulated for local dev and tests ---------
  app.get(
    '/backend/users/:userId/credentials',
    route('credentials', 'backend', (request) => {
      const client = state.user((request.params as { userId: string }).userId);
      if (!client) return { status: 404, body: { message: 'unknown user' } };
      return { status: 200, body: { clientApiKey: client.apiKey, generateResponse: client.generateResponse } };
    }),
  );

  // The backend's side of a recovery: it keeps the new signing shares (the /v1/recover response),
  // which its credentials route then hands out. Idempotent: the same shares again change nothing.
  app.put(
    '/backend/users/:userId/signing-shares',
    route('signingShares', 'backend', (request) => {
      const client = state.user((request.params as { userId: string }).userId);
      if (!client) return { status: 404, body: { message: 'unknown user' } };
      const body = request.body as { signingShares?: unknown } | undefined;
      if (typeof body?.signingShares !== 'string' || !isSigningShares(body.signingShares)) {
        return { status: 400, body: { message: 'signingShares must be the /v1/recover response as a JSON string' } };
      }
      client.generateResponse = body.signingShares;
      return { status: 204 };
    }),
  );

  // --- Admin: seeding, faults, inspection ------------------------------------------------------
  const seedSchema = z.object({
    userIds: z.array(z.string().min(1)).optional(),
    count: z.number().int().min(1).max(100_000).optional(),
    prefix: z.string().default('user-'),
  });
  app.post('/admin/users', async (request, reply) => {
    const parsed = seedSchema.safeParse(request.body ?? {});
    if (!parsed.success) return reply.code(400).send({ message: parsed.error.message });
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
  app.get('/admin/faults', async () => ({ rules: faults.list(), fired: faults.log.length }));
  app.post('/admin/faults', async (request, reply) => {
    const parsed = faultRuleSchema.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send({ message: parsed.error.message });
    return faults.add(parsed.data);
  });
  app.delete('/admin/faults', async () => {
    faults.clear();
    return { rules: [] };
  });
  app.get('/admin/calls', async () => calls);
  // Self-Managed Backups: the mode, and every call made to the webhook (no share, no secret).
  app.get('/admin/self-managed', async () => ({ selfManaged: describeSettings(selfManaged) }));
  app.put('/admin/self-managed', async (request, reply) => {
    const parsed = selfManagedSchema.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send({ message: parsed.error.message });
    selfManaged = webhookSettings(parsed.data);
    return { selfManaged: describeSettings(selfManaged) };
  });
  app.delete('/admin/self-managed', async () => {
    selfManaged = undefined;
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
  app.put('/admin/rate-limits', async (request, reply) => {
    const parsed = z
      .object({ enclavePerMinute: z.number().int().min(1), clientPerMinute: z.number().int().min(1) })
      .nullable()
      .safeParse(request.body ?? null);
    if (!parsed.success) return reply.code(400).send({ message: parsed.error.message });
    limiters = parsed.data ? makeLimiters(parsed.data) : undefined;
    return { rateLimits: parsed.data };
  });

  // The company backend's paged user list (the batch's HTTP source), over the seeded users.
  app.get(
    '/backend/users',
    route('listUsers', 'backend', (request) => {
      const query = request.query as { cursor?: string; limit?: string };
      const limit = Math.min(Math.max(Number(query.limit ?? 100) || 100, 1), 1000);
      const all = state.users();
      const start = query.cursor ? Number(Buffer.from(query.cursor, 'base64url').toString()) : 0;
      if (!Number.isInteger(start) || start < 0) return { status: 400, body: { message: 'bad cursor' } };
      const page = all.slice(start, start + limit).map((client) => client.userId);
      const next = start + page.length;
      return {
        status: 200,
        body: { userIds: page, nextCursor: next < all.length ? Buffer.from(String(next)).toString('base64url') : null },
      };
    }),
  );
  app.get('/health', async () => ({ ok: true }));

  // Before the server waits for requests in flight: abort their calls to the webhook.
  app.addHook('preClose', async () => webhook.close());
  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  return {
    app,
    state,
    faults,
    url: address,
    calls,
    webhookDeliveries: webhook.records,
    setSelfManaged: (config) => {
      selfManaged = webhookSettings(config);
    },
    close: () => app.close(),
  };
}

/**
 * A failed webhook: 500 and Portal's flat Enclave error body, by default. The contract gives the id
 * and message ("the backup fails with FAILED_WEBHOOK"), not the status. 500, because the fault is
 * neither the caller's request nor permanent: the company's webhook was down, slow or wrong, and
 * the service's classification (5xx → retry with backoff) is then the right reaction; a new
 * `/v1/backup` makes new pairs and the failed ones stay `incomplete`, harmless. A 400 would make
 * the service park the backup on the first webhook hiccup. `webhookFailure` changes status and id.
 */
const WEBHOOK_FAILURE = {
  status: 500,
  id: 'FAILED_WEBHOOK',
  backupMessage: 'Unable to send backup share to configured webhook',
  recoverMessage: 'Unable to fetch backup share from configured webhook',
} as const;

const ENCLAVE_ROUTES = new Set<RouteName>(['backup', 'recover']);

/** The non-Portal routes, closed to non-loopback callers unless their option opens them. */
const GUARDED_ROUTES = [
  { kind: 'admin', prefix: '/admin', name: 'the admin API', flag: '--open-admin' },
  { kind: 'backend', prefix: '/backend', name: 'the simulated company backend', flag: '--open-backend' },
] as const;

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x; anything else (or a socket already gone) is not. */
function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.toLowerCase().startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (isIPv4(v4)) return v4.startsWith('127.');
  return address === '::1';
}

function makeLimiters(limits: { enclavePerMinute: number; clientPerMinute: number }) {
  return { enclave: new SlidingWindowLimiter(limits.enclavePerMinute), client: new SlidingWindowLimiter(limits.clientPerMinute) };
}

function isSigningShares(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as Record<string, { id?: unknown; share?: unknown }>;
    return CURVES.every((curve) => typeof parsed[curve]?.id === 'string' && typeof parsed[curve]?.share === 'string');
  } catch {
    return false;
  }
}

/** Whether `sent` (a /v1/generate or /v1/recover response, as a JSON string) holds the client's current signing shares. */
function sameSigningShares(sent: string, current: Record<string, { id: string; share: string }> | undefined): boolean {
  if (!current) return false;
  try {
    const a = JSON.parse(sent) as Record<string, { id?: unknown; share?: unknown }>;
    return CURVES.every((curve) => a[curve]?.id === current[curve]?.id && a[curve]?.share === current[curve]?.share);
  } catch {
    return false;
  }
}

function waitForClose(request: FastifyRequest, limitMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, limitMs);
    const socket = request.raw.socket;
    if (!socket || socket.destroyed) {
      clearTimeout(timer);
      resolve();
      return;
    }
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
