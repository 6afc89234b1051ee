import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type pino from 'pino';
import { z } from 'zod';
import type { DecryptItem, EncryptItem } from '../adapters/vault/vault-transit';
import { BackupDomainError } from '../domain/errors';
import { custodianShareContext } from '../adapters/kms/transit-context';
import { matchesAnySecret } from '../config/secret-check';
import type { WebhookDeliveryOutcome } from '../metrics/definitions';
import { NO_WEBHOOK_METRICS, type WebhookMetrics } from '../metrics/service-metrics';

/** The rows the webhook keeps: one per (client, backup method, pair), the share encrypted. */
export interface CustodianShareRecords {
  putOnce(row: { clientId: string; backupMethod: string; pairId: string; encryptedShare: string; shareSha256: string }): Promise<'inserted' | 'unchanged' | 'conflict'>;
  listByClient(clientId: string): Promise<{ backupMethod: string; pairId: string; encryptedShare: string }[]>;
}

/** The Transit calls the webhook makes (VaultTransit has both). */
export interface ShareEncryption {
  encryptBatch(items: EncryptItem[]): Promise<string[]>;
  decryptBatch(items: DecryptItem[]): Promise<Buffer[]>;
}

export interface WebhookServerDeps {
  records: CustodianShareRecords;
  transit: ShareEncryption;
  /** Accepted X-Webhook-Secret values (two during a rotation). */
  secrets: readonly string[];
  /** When set, only these source addresses are served (Portal's documented ones in production). */
  allowedSourceIps?: readonly string[];
  /** Whole-request budget; Portal gives up after 10 s, so this stays under it. */
  deadlineMs: number;
  bodyLimitBytes: number;
  logger: pino.Logger;
  /** Deliveries by outcome, requests by route template and status class (none when absent). */
  metrics?: WebhookMetrics;
}

const deliverySchema = z.object({
  clientId: z.string().trim().min(1).max(200),
  // Stored verbatim: Portal says the values are subject to change. Absent means UNKNOWN.
  backupMethod: z.string().min(1).max(100).optional(),
  share: z.string().min(1),
  backupSharePairId: z.string().trim().min(1).max(200).optional(),
});
const fetchSchema = z.object({ clientId: z.string().trim().min(1).max(200) });

class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
}

/** Portal's pair id for a share delivered without `backupSharePairId`: read from the share itself. */
function pairIdInShare(share: string): string | undefined {
  try {
    const parsed = JSON.parse(share) as Record<string, unknown>;
    for (const key of ['backupSharePairId', 'pairId', 'id']) {
      const value = parsed?.[key];
      if (typeof value === 'string' && value.trim().length > 0 && value.length <= 200) return value;
    }
  } catch {
    // Not JSON: no pair id inside.
  }
  return undefined;
}

/** A delivery's outcome from the status it was answered with; 200s say which kind themselves. */
function deliveryOutcome(status: number, stored: 'inserted' | 'unchanged' | undefined): WebhookDeliveryOutcome {
  if (status === 200) return stored === 'unchanged' ? 'duplicate' : 'stored';
  const byStatus: Record<number, WebhookDeliveryOutcome> = {
    400: 'malformed',
    401: 'unauthorized',
    403: 'forbidden',
    409: 'conflict',
    413: 'too_large',
    415: 'malformed',
    503: 'unavailable',
  };
  return byStatus[status] ?? 'error';
}

function normalizeIp(ip: string | undefined): string {
  return (ip ?? '').replace(/^::ffff:/, '');
}

/**
 * The custodian-share webhook of Self-Managed Backups (shared/portal-api.md): Portal posts each
 * curve's custodian backup share to `POST /backup`, then validates with `POST /backup/fetch`.
 * A share is acknowledged (200) only after its Transit ciphertext is committed in PostgreSQL:
 * Portal keeps no copy. Everything happens within `deadlineMs`; past it the answer is 503 and
 * Portal reports FAILED_WEBHOOK. No share, secret or body ever reaches a log or an error.
 */
export function createWebhookServer(deps: WebhookServerDeps): FastifyInstance {
  // On shutdown, idle keep-alive connections close at once; deliveries in flight finish.
  const app = Fastify({ logger: false, bodyLimit: deps.bodyLimitBytes, forceCloseConnections: 'idle' });
  const log = deps.logger;
  const metrics = deps.metrics ?? NO_WEBHOOK_METRICS;
  /** What a 200 on POST /backup did, for its metric. */
  const storedAs = new WeakMap<FastifyRequest, 'inserted' | 'unchanged'>();

  // Every answer, whichever hook or handler gave it: by route template, never the URL.
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.request(`${request.method} ${route}`, reply.statusCode, reply.elapsedTime / 1000);
    if (route === '/backup' && request.method === 'POST') metrics.delivery(deliveryOutcome(reply.statusCode, storedAs.get(request)));
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.url === '/health') return;
    const ip = normalizeIp(request.socket.remoteAddress);
    if (deps.allowedSourceIps && !deps.allowedSourceIps.includes(ip)) {
      log.warn({ route: request.url, sourceIp: ip }, 'webhook call from an address that is not allowed');
      return reply.code(403).send({ message: 'forbidden' });
    }
    const presented = request.headers['x-webhook-secret'];
    if (!matchesAnySecret(typeof presented === 'string' ? presented : undefined, deps.secrets)) {
      log.warn({ route: request.url, sourceIp: ip, secretPresent: presented !== undefined }, 'webhook call with a missing or wrong secret');
      return reply.code(401).send({ message: 'unauthorized' });
    }
  });

  /** Runs `work` within the request's budget; a late or failed dependency answers 503. */
  const withinDeadline = async <T>(startedAt: number, work: () => Promise<T>): Promise<T> => {
    const remaining = deps.deadlineMs - (Date.now() - startedAt);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new DeadlineExceededError(`no answer within ${deps.deadlineMs} ms`)), Math.max(0, remaining));
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  const unavailable = (reply: FastifyReply, error: unknown, what: Record<string, unknown>) => {
    // Only the error's type and our own message (domain errors carry no share or key).
    const reason = error instanceof DeadlineExceededError || error instanceof BackupDomainError ? `${error.name}: ${error.message}` : (error as Error)?.name;
    log.error({ ...what, reason }, 'custodian share not acknowledged');
    // Not "nothing was stored": a write already under way may still commit after this answer (a row
    // Portal then ignores, for a pair that stays incomplete). What holds is: never a 200 without it.
    return reply.code(503).send({ message: 'unavailable: the share was not acknowledged' });
  };

  // Bodies fastify cannot parse (not JSON, too large) never reach a route: log them here, by kind only.
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    log.warn({ route: request.url, status, code: error.code }, status === 413 ? 'webhook body too large' : 'malformed webhook request');
    return reply.code(status).send({ message: status === 413 ? 'body too large' : status === 500 ? 'internal error' : 'malformed request body' });
  });

  app.post('/backup', async (request, reply) => {
    const startedAt = Date.now();
    const parsed = deliverySchema.safeParse(request.body);
    if (!parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((issue) => issue.path.join('.') || '(body)'))].join(', ');
      log.warn({ route: '/backup', fields }, 'malformed custodian share delivery');
      return reply.code(400).send({ message: `malformed delivery: check ${fields}` });
    }
    const { clientId, share } = parsed.data;
    const backupMethod = parsed.data.backupMethod ?? 'UNKNOWN';
    const pairId = parsed.data.backupSharePairId ?? pairIdInShare(share);
    if (!pairId) {
      log.warn({ route: '/backup', clientId, backupMethod }, 'custodian share without a pair id');
      return reply.code(400).send({ message: 'malformed delivery: no backupSharePairId, and none inside the share' });
    }
    const what = { route: '/backup', clientId, backupMethod, pairId };
    let outcome;
    try {
      outcome = await withinDeadline(startedAt, async () => {
        const [encryptedShare] = await deps.transit.encryptBatch([
          { plaintext: Buffer.from(share, 'utf8'), context: custodianShareContext(clientId, pairId) },
        ]);
        const shareSha256 = createHash('sha256').update(share, 'utf8').digest('hex');
        // Vault took the budget: do not start a write that would land after Portal gave up.
        if (Date.now() - startedAt >= deps.deadlineMs) throw new DeadlineExceededError(`no answer within ${deps.deadlineMs} ms`);
        return deps.records.putOnce({ clientId, backupMethod, pairId, encryptedShare: encryptedShare!, shareSha256 });
      });
    } catch (error) {
      return unavailable(reply, error, what);
    }
    if (outcome === 'conflict') {
      log.error(what, 'a different custodian share was delivered for a pair that already has one; kept the first');
      return reply.code(409).send({ message: 'a different share is already stored for this pair' });
    }
    storedAs.set(request, outcome);
    log.info({ ...what, outcome, ms: Date.now() - startedAt }, 'custodian share stored');
    return reply.code(200).send({ stored: true });
  });

  app.post('/backup/fetch', async (request, reply) => {
    const startedAt = Date.now();
    const parsed = fetchSchema.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send({ message: 'malformed fetch: clientId is required' });
    const { clientId } = parsed.data;
    let backupShares: string[];
    try {
      backupShares = await withinDeadline(startedAt, async () => {
        const rows = await deps.records.listByClient(clientId);
        if (rows.length === 0) return [];
        const plaintexts = await deps.transit.decryptBatch(
          rows.map((row) => ({ ciphertext: row.encryptedShare, context: custodianShareContext(clientId, row.pairId) })),
        );
        return plaintexts.map((plain) => plain.toString('utf8'));
      });
    } catch (error) {
      return unavailable(reply, error, { route: '/backup/fetch', clientId });
    }
    log.info({ route: '/backup/fetch', clientId, shares: backupShares.length, ms: Date.now() - startedAt }, 'custodian shares fetched');
    return reply.code(200).send({ backupShares });
  });

  app.get('/health', async () => ({ ok: true }));
  return app;
}
