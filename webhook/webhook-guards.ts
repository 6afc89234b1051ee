import type { FastifyInstance, FastifyRequest } from 'fastify';
import type pino from 'pino';
import { matchesAnySecret } from '../config/secret-check';
import type { WebhookDeliveryOutcome } from '../metrics/definitions';
import { NO_WEBHOOK_METRICS, type WebhookMetrics } from '../metrics/service-metrics';
import type { WebhookServerDeps } from './webhook-deps';

/** What the webhook's hooks and routes share: its deps, log, metrics, and what each 200 on POST /backup did (for its metric). */
export interface WebhookContext {
  deps: WebhookServerDeps;
  log: pino.Logger;
  metrics: WebhookMetrics;
  storedAs: WeakMap<FastifyRequest, 'inserted' | 'unchanged'>;
}

export function webhookContext(deps: WebhookServerDeps): WebhookContext {
  return { deps, log: deps.logger, metrics: deps.metrics ?? NO_WEBHOOK_METRICS, storedAs: new WeakMap() };
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
 * Before any route: only allowed source addresses and a valid X-Webhook-Secret; after every
 * answer, its metrics (by route template, never the URL); bodies fastify cannot parse answered and
 * logged by kind only.
 */
export function registerGuards(app: FastifyInstance, { deps, log, metrics, storedAs }: WebhookContext): void {
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

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    log.warn({ route: request.url, status, code: error.code }, status === 413 ? 'webhook body too large' : 'malformed webhook request');
    return reply.code(status).send({ message: status === 413 ? 'body too large' : status === 500 ? 'internal error' : 'malformed request body' });
  });
}
