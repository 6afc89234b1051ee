import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BackupDomainError } from '../domain/errors';
import { custodianShareContext } from '../adapters/kms/transit-context';
import type { WebhookContext } from './webhook-guards';

/**
 * Portal's two calls (shared/portal-api.md): `POST /backup` stores one custodian share, answered
 * 200 only once its ciphertext is committed; `POST /backup/fetch` gives a client's shares back.
 * Both within the request's budget (`deadlineMs`): past it, 503.
 */

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

/** Runs `work` within the request's budget; a late or failed dependency answers 503. */
async function withinDeadline<T>(deadlineMs: number, startedAt: number, work: () => Promise<T>): Promise<T> {
  const remaining = deadlineMs - (Date.now() - startedAt);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineExceededError(`no answer within ${deadlineMs} ms`)), Math.max(0, remaining));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function unavailable({ log }: WebhookContext, reply: FastifyReply, error: unknown, what: Record<string, unknown>) {
  // Only the error's type and our own message (domain errors carry no share or key).
  const reason = error instanceof DeadlineExceededError || error instanceof BackupDomainError ? `${error.name}: ${error.message}` : (error as Error)?.name;
  log.error({ ...what, reason }, 'custodian share not acknowledged');
  // Not "nothing was stored": a write already under way may still commit after this answer (a row
  // Portal then ignores, for a pair that stays incomplete). What holds is: never a 200 without it.
  return reply.code(503).send({ message: 'unavailable: the share was not acknowledged' });
}

/** `POST /backup`: validate, encrypt in the client-and-pair context, store once; 200 only once committed. */
async function storeDelivery(context: WebhookContext, request: FastifyRequest, reply: FastifyReply) {
  const { deps, log } = context;
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
    outcome = await withinDeadline(deps.deadlineMs, startedAt, async () => {
      const [encryptedShare] = await deps.transit.encryptBatch([
        { plaintext: Buffer.from(share, 'utf8'), context: custodianShareContext(clientId, pairId) },
      ]);
      const shareSha256 = createHash('sha256').update(share, 'utf8').digest('hex');
      // Vault took the budget: do not start a write that would land after Portal gave up.
      if (Date.now() - startedAt >= deps.deadlineMs) throw new DeadlineExceededError(`no answer within ${deps.deadlineMs} ms`);
      return deps.records.putOnce({ clientId, backupMethod, pairId, encryptedShare: encryptedShare!, shareSha256 });
    });
  } catch (error) {
    return unavailable(context, reply, error, what);
  }
  if (outcome === 'conflict') {
    log.error(what, 'a different custodian share was delivered for a pair that already has one; kept the first');
    return reply.code(409).send({ message: 'a different share is already stored for this pair' });
  }
  context.storedAs.set(request, outcome);
  log.info({ ...what, outcome, ms: Date.now() - startedAt }, 'custodian share stored');
  return reply.code(200).send({ stored: true });
}

/** `POST /backup/fetch`: the client's shares, decrypted in their contexts. */
async function fetchShares(context: WebhookContext, request: FastifyRequest, reply: FastifyReply) {
  const { deps, log } = context;
  const startedAt = Date.now();
  const parsed = fetchSchema.safeParse(request.body);
  if (!parsed.success) return reply.code(400).send({ message: 'malformed fetch: clientId is required' });
  const { clientId } = parsed.data;
  let backupShares: string[];
  try {
    backupShares = await withinDeadline(deps.deadlineMs, startedAt, async () => {
      const rows = await deps.records.listByClient(clientId);
      if (rows.length === 0) return [];
      const plaintexts = await deps.transit.decryptBatch(
        rows.map((row) => ({ ciphertext: row.encryptedShare, context: custodianShareContext(clientId, row.pairId) })),
      );
      return plaintexts.map((plain) => plain.toString('utf8'));
    });
  } catch (error) {
    return unavailable(context, reply, error, { route: '/backup/fetch', clientId });
  }
  log.info({ route: '/backup/fetch', clientId, shares: backupShares.length, ms: Date.now() - startedAt }, 'custodian shares fetched');
  return reply.code(200).send({ backupShares });
}

export function registerBackupRoutes(app: FastifyInstance, context: WebhookContext): void {
  app.post('/backup', (request, reply) => storeDelivery(context, request, reply));
  app.post('/backup/fetch', (request, reply) => fetchShares(context, request, reply));
}
