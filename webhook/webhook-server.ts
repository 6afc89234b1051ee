import Fastify, { type FastifyInstance } from 'fastify';
import { registerBackupRoutes } from './backup-routes';
import { registerGuards, webhookContext } from './webhook-guards';
import type { WebhookServerDeps } from './webhook-deps';

export type { CustodianShareRecords, ShareEncryption, WebhookServerDeps } from './webhook-deps';

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
  const context = webhookContext(deps);
  registerGuards(app, context);
  registerBackupRoutes(app, context);
  app.get('/health', async () => ({ ok: true }));
  return app;
}
