import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BackupActionRejectedError, type BackupClient } from '../client/backup-client';
import type { BatchClient } from '../client/batch-client';
import type { RecoveryClient } from '../client/recovery-client';
import { clientErrorView } from '../client/client-error';
import { matchesAnySecret } from '../config/secret-check';
import { IDEMPOTENCY_KEY_HEADER, parseIdempotencyKey } from '../domain/idempotency-key';
import type { BatchSource } from '../contracts/batch-backup-api';
import { PassThrough } from 'node:stream';
import { COVERAGE_CSV_HEADER, coverageCsvLine, type CoverageOptions, type CoverageRow, type CoverageSummary } from '../client/coverage';
import {
  abandonBody,
  batchIdParams,
  batchStartBody,
  errorAnswer,
  idempotencyKeyHeaders,
  openObject,
  recoveryStartBody,
  retryBody,
  startedAnswer,
  userIdParams,
  waitQuery,
} from './schemas';

export interface ApiServerOptions {
  backups: BackupClient;
  recoveries: RecoveryClient;
  batches: BatchClient;
  /** Bearer tokens accepted (several during a rotation). */
  tokens: readonly string[];
  bodyLimitBytes: number;
  logger: Logger;
  /**
   * `GET /v1/coverage`, when the process has the backend's configuration (Portal, credentials, the
   * store: client/cli-coverage.ts coverageBackend); absent, the route answers 501.
   */
  coverage?: {
    run(users: AsyncIterable<string[]>, options: CoverageOptions, emit: (row: CoverageRow) => Promise<void>): Promise<CoverageSummary>;
    /** The backend's paged user list, as `backup coverage --source-url` reads it. */
    pages(url: string, pageSize: number): AsyncIterable<string[]>;
  };
}

type UserParams = { Params: { userId: string } };
type BatchParams = { Params: { batchId: string } };
type WaitParams = UserParams & { Querystring: { waitSeconds: number } };

/** The document's version: bump it when a route or shape changes. */
export const API_VERSION = '1.1.0';

/**
 * The HTTP API for backends not written in TypeScript: the same operations as BackupClient,
 * RecoveryClient and BatchClient, behind bearer tokens, with validated requests and an OpenAPI
 * document at `/openapi.json`. It holds the payload codec key (it is a client), never a sealing key.
 */
export async function createApiServer(options: ApiServerOptions) {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // Unknown fields are refused (400), not silently dropped: a typo must not start a batch with defaults.
    ajv: { customOptions: { removeAdditional: false } },
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'MPC wallet backup orchestrator', version: API_VERSION, description: 'Start and steer backups, recoveries and batch re-backups.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config && (request.routeOptions.config as { public?: boolean }).public) return;
    const header = request.headers.authorization;
    const presented = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    if (!matchesAnySecret(presented, options.tokens)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ error: 'Unauthorized', message: 'a valid bearer token is required (Authorization: Bearer <API token>)' });
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => sendError(error, request, reply));
  // Routes whose body is optional (retry, recovery start) take a request without one as `{}`.
  app.addHook('preValidation', async (request) => {
    if (request.method === 'POST' && (request.body === undefined || request.body === null)) request.body = {};
  });

  const { backups, recoveries, batches } = options;
  const responses = (ok: object, okCode = 200) => ({ [okCode]: ok, 400: errorAnswer, 401: errorAnswer, 404: errorAnswer, 409: errorAnswer });

  app.get('/health', { config: { public: true }, schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  // --- Backups ----------------------------------------------------------------------------------
  app.post<UserParams>('/v1/backups/:userId', {
    schema: {
      summary: "Start a user's backup: a running backup is returned, not started twice; after it closed, a start is a new backup unless the Idempotency-Key header repeats the key of the request that started one (24 h)",
      tags: ['backups'], params: userIdParams, headers: idempotencyKeyHeaders, response: responses(startedAnswer, 202),
    },
  }, async (request, reply) => {
    const key = request.headers[IDEMPOTENCY_KEY_HEADER.toLowerCase()];
    const options = key === undefined ? {} : { idempotencyKey: parseIdempotencyKey(key) };
    return reply.code(202).send(await backups.startBackupWorkflow(request.params.userId, options));
  });

  app.get<UserParams>('/v1/backups/:userId', {
    schema: { summary: "The user's latest backup: status, step, attempts, last error, result", tags: ['backups'], params: userIdParams, response: responses(openObject) },
  }, async (request) => backups.getBackupStatus(request.params.userId));

  app.get<WaitParams>('/v1/backups/:userId/result', {
    schema: {
      summary: 'Wait up to waitSeconds for the backup to end: 200 with the result, 409 if it did not complete, 202 with the status if still running',
      tags: ['backups'], params: userIdParams, querystring: waitQuery, response: { ...responses(openObject), 202: openObject },
    },
  }, async (request, reply) =>
    waitOrStatus(reply, request.query.waitSeconds, (signal) => backups.temporal.withAbortSignal(signal, () => backups.waitForBackup(request.params.userId)), () => backups.getBackupStatus(request.params.userId)));

  app.post<UserParams & { Body: { requestedBy?: string } }>('/v1/backups/:userId/retry', {
    schema: { summary: 'Resume a backup parked as NEEDS_ATTENTION', tags: ['backups'], params: userIdParams, body: retryBody, response: responses(openObject) },
  }, async (request) => backups.retryBackup(request.params.userId, request.body?.requestedBy));

  app.post<UserParams & { Body: { reason: string; requestedBy?: string } }>('/v1/backups/:userId/abandon', {
    schema: { summary: 'Give up a parked backup; the reason is kept in its history', tags: ['backups'], params: userIdParams, body: abandonBody, response: responses(openObject) },
  }, async (request) => backups.abandonBackup(request.params.userId, request.body.reason, request.body.requestedBy));

  // --- Recoveries -------------------------------------------------------------------------------
  app.post<UserParams & { Body: { freshBackup?: boolean } }>('/v1/recoveries/:userId', {
    schema: { summary: "Start a recovery of the user's wallet from its newest completed backup (idempotent)", tags: ['recoveries'], params: userIdParams, body: recoveryStartBody, response: responses(startedAnswer, 202) },
  }, async (request, reply) => reply.code(202).send(await recoveries.startRecovery(request.params.userId, { freshBackup: request.body?.freshBackup !== false })));

  app.get<UserParams>('/v1/recoveries/:userId', {
    schema: { summary: "The user's latest recovery", tags: ['recoveries'], params: userIdParams, response: responses(openObject) },
  }, async (request) => recoveries.getRecoveryStatus(request.params.userId));

  app.get<WaitParams>('/v1/recoveries/:userId/result', {
    schema: { summary: 'Wait up to waitSeconds for the recovery to end (as for backups)', tags: ['recoveries'], params: userIdParams, querystring: waitQuery, response: { ...responses(openObject), 202: openObject } },
  }, async (request, reply) =>
    waitOrStatus(reply, request.query.waitSeconds, (signal) => recoveries.temporal.withAbortSignal(signal, () => recoveries.waitForRecovery(request.params.userId)), () => recoveries.getRecoveryStatus(request.params.userId)));

  app.post<UserParams & { Body: { requestedBy?: string } }>('/v1/recoveries/:userId/retry', {
    schema: { summary: 'Resume a recovery parked as NEEDS_ATTENTION', tags: ['recoveries'], params: userIdParams, body: retryBody, response: responses(openObject) },
  }, async (request) => recoveries.retryRecovery(request.params.userId, request.body?.requestedBy));

  app.post<UserParams & { Body: { reason: string; requestedBy?: string } }>('/v1/recoveries/:userId/abandon', {
    schema: { summary: 'Give up a parked recovery', tags: ['recoveries'], params: userIdParams, body: abandonBody, response: responses(openObject) },
  }, async (request) => recoveries.abandonRecovery(request.params.userId, request.body.reason, request.body.requestedBy));

  // --- Batches ----------------------------------------------------------------------------------
  app.post<{ Body: { source: BatchSource; batchId?: string; concurrency?: number; backupsPerMinute?: number; skipIfBackedUpSince?: string } }>('/v1/batches', {
    schema: { summary: 'Start a batch re-backup over a list of users or the backend’s paged source', tags: ['batches'], body: batchStartBody, response: responses(openObject, 202) },
  }, async (request, reply) => {
    const { skipIfBackedUpSince, ...rest } = request.body;
    const started = await batches.startBatch({ ...rest, ...(skipIfBackedUpSince ? { skipIfBackedUpSince: new Date(skipIfBackedUpSince) } : {}) });
    return reply.code(202).send(started);
  });

  app.get<BatchParams>('/v1/batches/:batchId', {
    schema: { summary: 'Progress: totals, completed, failed, parked, in flight, rate, ETA (the report once done)', tags: ['batches'], params: batchIdParams, response: responses(openObject) },
  }, async (request) => batches.status(request.params.batchId));

  app.get<BatchParams>('/v1/batches/:batchId/report', {
    schema: { summary: 'The report (while running: the problems so far)', tags: ['batches'], params: batchIdParams, response: responses(openObject) },
  }, async (request) => batches.report(request.params.batchId));

  app.get<{ Querystring: { users?: string; sourceUrl?: string; pageSize: number; format: 'json' | 'csv'; maxAgeDays: number; usersPerMinute: number } }>('/v1/coverage', {
    schema: {
      summary: 'Coverage of every user of a list or the backend’s paged source: the newest completed backup and who has none, a stale one, a parked run or a drill failure (JSON Lines or CSV, streamed)',
      tags: ['coverage'],
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          users: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}(,[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}){0,999}$' },
          sourceUrl: { type: 'string', pattern: '^https?://\\S+$', maxLength: 2048 },
          pageSize: { type: 'integer', minimum: 1, maximum: 10_000, default: 500 },
          format: { type: 'string', enum: ['json', 'csv'], default: 'json' },
          maxAgeDays: { type: 'number', minimum: 0.001, maximum: 36_500, default: 30 },
          usersPerMinute: { type: 'integer', minimum: 1, maximum: 60_000, default: 600 },
        },
      },
    },
  }, async (request, reply) => {
    const coverage = options.coverage;
    if (!coverage) return reply.code(501).send({ error: 'CoverageNotConfigured', message: 'this API process has no backend configuration (PORTAL_*, CREDENTIALS_URL, CIPHERTEXT_STORE): run `backup coverage` instead' });
    const { users, sourceUrl, pageSize, format, maxAgeDays, usersPerMinute } = request.query;
    if ((users === undefined) === (sourceUrl === undefined)) return reply.code(400).send({ error: 'BadRequest', message: 'give exactly one of users and sourceUrl' });
    let pages: AsyncIterable<string[]>;
    try {
      pages = users !== undefined ? (async function* () { yield users.split(','); })() : coverage.pages(sourceUrl!, pageSize);
    } catch (error) {
      return reply.code(400).send({ error: 'BadRequest', message: error instanceof Error ? error.message : String(error) });
    }
    const body = new PassThrough();
    const write = (line: string) => new Promise<void>((resolve) => (body.write(`${line}\n`) ? resolve() : body.once('drain', resolve)));
    // Streamed: rows go out as they are made; the summary (JSON) or nothing more (CSV) closes it.
    void (async () => {
      if (format === 'csv') await write(COVERAGE_CSV_HEADER);
      const summary = await coverage.run(pages, { maxAgeMs: maxAgeDays * 86_400_000, usersPerMinute }, (row) => write(format === 'csv' ? coverageCsvLine(row) : JSON.stringify(row)));
      if (format === 'json') await write(JSON.stringify({ summary }));
      body.end();
    })().catch((error: unknown) => {
      request.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'coverage report failed');
      body.end(format === 'json' ? `${JSON.stringify({ error: 'CoverageFailed', message: error instanceof Error ? error.message : String(error) })}\n` : '');
    });
    return reply.type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson').send(body);
  });

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post<BatchParams>(`/v1/batches/:batchId/${action}`, {
      schema: { summary: `${action[0]!.toUpperCase()}${action.slice(1)} a running batch`, tags: ['batches'], params: batchIdParams, response: responses(openObject) },
    }, async (request) => {
      try {
        return await batches[action](request.params.batchId);
      } catch (error) {
        // An update to a batch that has ended fails as "not found": say which it is.
        if (error instanceof Error && error.name === 'WorkflowNotFoundError' && (await batchHasEnded(batches, request.params.batchId))) {
          throw new BackupActionRejectedError(`${action} refused: batch ${request.params.batchId} has already ended (see its report)`);
        }
        throw error;
      }
    });
  }
  return app;
}

async function batchHasEnded(batches: BatchClient, batchId: string): Promise<boolean> {
  try {
    await batches.status(batchId);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits up to `seconds` for the run to end: its result (200), why it did not complete (409), or its
 * status (202). On a timeout the wait's long poll is aborted, so no poll outlives the request.
 */
async function waitOrStatus(reply: FastifyReply, seconds: number, wait: (signal: AbortSignal) => Promise<unknown>, status: () => Promise<unknown>) {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), seconds * 1000);
  });
  const waiting = wait(abort.signal);
  try {
    const outcome = await Promise.race([waiting, timeout]);
    if (outcome === 'timeout') return reply.code(202).send(await status());
    return reply.code(200).send(outcome);
  } finally {
    clearTimeout(timer);
    abort.abort();
    // The aborted wait rejects; that is expected and must not surface as an unhandled rejection.
    waiting.catch(() => undefined);
  }
}

/** Client errors (client/client-error.ts) answer with their own status; anything else is a 500 without internals. */
function sendError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return reply.code(400).send({ error: 'InvalidRequest', message: fastifyError.message });
  if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return reply.code(fastifyError.statusCode).send({ error: fastifyError.code ?? 'BadRequest', message: fastifyError.message });
  }
  const view = clientErrorView(error);
  if (view) return reply.code(view.httpStatus).send({ error: view.code, message: view.message });
  request.log.error({ err: { name: error.name, message: error.message } }, 'request failed');
  return reply.code(500).send({ error: 'InternalError', message: 'the request failed; see the API server log' });
}
