import { isIPv4 } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { matchesAnySecret } from '../config/secret-check';
import type { RouteName } from './fault-rules';
import { nestedError, STATUS_IDS, type Outcome } from './outcomes';
import type { PortalSimulatorOptions } from './simulator-options';
import { SlidingWindowLimiter } from './rate-limiter';
import type { Limiters, SimulatorContext } from './simulator-context';
import type { SimClient } from './portal-state';

const HANG_LIMIT_MS = 5 * 60_000;
const ENCLAVE_ROUTES = new Set<RouteName>(['backup', 'recover']);

/** The non-Portal routes, closed to non-loopback callers unless their option opens them. */
const GUARDED_ROUTES = [
  { kind: 'admin', prefix: '/admin', name: 'the admin API', flag: '--open-admin' },
  { kind: 'backend', prefix: '/backend', name: 'the simulated company backend', flag: '--open-backend' },
] as const;

/**
 * One gate for every non-Portal route. It matches the route that routing chose (not the raw
 * URL), so encoded or odd spellings of a path cannot slip past it; unmatched URLs 404 anyway.
 * The socket's peer, not request.ip: that would follow X-Forwarded-For if trustProxy were on.
 */
export function guardNonPortalRoutes(app: FastifyInstance, options: PortalSimulatorOptions): void {
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
}

/**
 * The pipeline of every Portal (and company-backend) route, in order: count the call,
 * authenticate, Portal's rate limit, the faults armed before the handler, the handler, and the
 * faults after it (a lost or malformed response after the change is committed).
 */
export function routePipeline(ctx: Omit<SimulatorContext, 'route'>): SimulatorContext['route'] {
  return (name, auth, handler) => async (request, reply) => {
    ctx.calls[name] = (ctx.calls[name] ?? 0) + 1;
    const { client, failure: authFailure } = auth === 'client' ? authenticate(ctx, request) : authenticateBackend(ctx.options, request);
    const userId = client?.userId ?? (request.params as { userId?: string }).userId;
    if (rateLimited(ctx, name, auth, reply)) return reply.code(429).send({ id: 'TOO_MANY_REQUESTS', message: 'Rate limit exceeded' });
    // A fault that answered has sent (or hijacked) the reply: the handler does not run.
    if (await answeredByFaultBefore(ctx, name, userId, request, reply)) return reply;
    const outcome = authFailure ?? (await handler(request, client));
    return send(ctx, name, userId, outcome, request, reply);
  };
}

/** Resolves the bearer key; undefined client plus an outcome when auth fails. */
function authenticate(ctx: Pick<SimulatorContext, 'state'>, request: FastifyRequest): { client?: SimClient; failure?: Outcome } {
  const header = request.headers.authorization;
  if (!header) return { failure: { status: 401, body: 'Authorization header is missing' } };
  const match = /^Bearer (\S+)$/.exec(header);
  if (!match) return { failure: { status: 401, body: 'Incorrect API key format' } };
  const client = ctx.state.byKey(match[1]!);
  if (!client || client.apiKeyRevoked) return { failure: nestedError(401, 'UNAUTHORIZED', 'Invalid or revoked API key') };
  return { client };
}

/** The company backend's routes take the backend token, when one is set. */
function authenticateBackend(options: PortalSimulatorOptions, request: FastifyRequest): { client?: SimClient; failure?: Outcome } {
  if (options.backendToken && !matchesAnySecret(request.headers.authorization, [`Bearer ${options.backendToken}`])) {
    return { failure: { status: 401, body: { message: 'missing or wrong backend token' } } };
  }
  return {};
}

/** Portal's rate limits (Enclave and client API apart); sets Retry-After when a call is over. */
function rateLimited(ctx: Omit<SimulatorContext, 'route'>, name: RouteName, auth: 'client' | 'backend', reply: FastifyReply): boolean {
  const { limiters } = ctx.live;
  const limiter = limiters && auth === 'client' ? (ENCLAVE_ROUTES.has(name) ? limiters.enclave : limiters.client) : undefined;
  const slot = limiter?.take(Date.now());
  if (!slot || slot.ok) return false;
  ctx.calls.rateLimited = (ctx.calls.rateLimited ?? 0) + 1;
  reply.header('retry-after', String(slot.retryAfterSeconds));
  return true;
}

/**
 * The faults armed before the handler: a latency is waited out; any other answers in the handler's
 * place (true). It says so with a boolean, not the reply: a Fastify reply is thenable, and an async
 * function that returned it would resolve to what the reply's `then` gives, not to the reply.
 */
async function answeredByFaultBefore(
  ctx: Omit<SimulatorContext, 'route'>,
  name: RouteName,
  userId: string | undefined,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<boolean> {
  for (const fault of ctx.faults.before(name, userId)) {
    if (fault.kind === 'latency') {
      await new Promise((resolve) => setTimeout(resolve, fault.latencyMs ?? 0));
      continue;
    }
    if (fault.kind === 'hang') {
      await waitForClose(request, fault.latencyMs ?? HANG_LIMIT_MS);
      if (request.raw.socket?.destroyed) reply.hijack();
      else void reply.code(504).send({ id: 'GATEWAY_TIMEOUT', message: 'simulated hang ended' });
      return true;
    }
    if (fault.kind === 'rate-limit') {
      if (fault.retryAfterSeconds !== null) reply.header('retry-after', String(fault.retryAfterSeconds ?? 1));
      void reply.code(429).send(fault.body ?? { id: 'TOO_MANY_REQUESTS', message: 'Rate limit exceeded' });
      return true;
    }
    if (fault.kind === 'html-error') {
      void reply
        .code(fault.status ?? 502)
        .type('text/html')
        .send('<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>');
      return true;
    }
    const status = fault.status ?? 500;
    void reply.code(status).send(fault.body ?? { id: STATUS_IDS[status] ?? 'ERROR', message: `simulated ${status}` });
    return true;
  }
  return false;
}

/** Sends the handler's outcome, unless a fault armed after it loses or garbles a successful answer. */
function send(
  ctx: Omit<SimulatorContext, 'route'>,
  name: RouteName,
  userId: string | undefined,
  outcome: Outcome,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply | undefined {
  const after = outcome.status < 300 ? ctx.faults.after(name, userId) : undefined;
  if (after?.kind === 'lost-response') {
    // The change above is committed; the caller never learns it.
    reply.hijack();
    request.raw.socket?.destroy();
    return undefined;
  }
  if (after?.kind === 'malformed') {
    return reply.code(200).type('application/json').send('{"SECP256K1": {"id": "trunc');
  }
  reply.code(outcome.status);
  if (typeof outcome.body === 'string') reply.type('text/plain');
  return reply.send(outcome.body ?? '');
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x; anything else (or a socket already gone) is not. */
function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.toLowerCase().startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (isIPv4(v4)) return v4.startsWith('127.');
  return address === '::1';
}

export function makeLimiters(limits: { enclavePerMinute: number; clientPerMinute: number }): Limiters {
  return { enclave: new SlidingWindowLimiter(limits.enclavePerMinute), client: new SlidingWindowLimiter(limits.clientPerMinute) };
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
