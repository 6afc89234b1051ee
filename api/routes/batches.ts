import type { ApiApp } from './api-app';
import { registerListRoute } from './fleet-runs';
import { BackupActionRejectedError } from '../../client/backup-client';
import type { BatchClient } from '../../client/batch-client';
import type { BatchSource } from '../../contracts/batch-backup-api';
import type { OperatorSigner } from '../../client/operator-signer';
import { operatorOf } from './parkable-runs';
import { batchIdParams, batchStartBody, listAnswer, openObject, responses } from '../schemas';

type BatchParams = { Params: { batchId: string } };
type BatchStart = { Body: { source: BatchSource; batchId?: string; concurrency?: number; backupsPerMinute?: number; skipIfBackedUpSince?: string } };

/** `/v1/batches`: start, status, report, and pause/resume/cancel of a running batch. */
export function registerBatchRoutes(app: ApiApp, batches: BatchClient, signerFor: (operator: string | undefined) => OperatorSigner): void {
  app.post<BatchStart>('/v1/batches', {
    schema: { summary: 'Start a batch re-backup over a list of users or the backend’s paged source', tags: ['batches'], body: batchStartBody, response: responses(openObject, 202) },
  }, async (request, reply) => {
    const { skipIfBackedUpSince, ...rest } = request.body;
    const started = await batches.startBatch({ ...rest, ...(skipIfBackedUpSince ? { skipIfBackedUpSince: new Date(skipIfBackedUpSince) } : {}) });
    return reply.code(202).send(started);
  });

  registerListRoute(app, '/v1/batches', 'batches', 'Batches', (options) => batches.list(options));

  app.get<BatchParams & { Querystring: { limit: number } }>('/v1/batches/:batchId/problems', {
    schema: {
      summary: 'Every backup the batch started that did not complete (failed or parked), with its reason, from visibility',
      tags: ['batches'], params: batchIdParams,
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1_000 } } },
      response: responses(listAnswer),
    },
  }, async (request) => batches.listProblems(request.params.batchId, request.query.limit));

  app.get<BatchParams>('/v1/batches/:batchId', {
    schema: { summary: 'Progress: totals, completed, failed, parked, in flight, rate, ETA (the report once done)', tags: ['batches'], params: batchIdParams, response: responses(openObject) },
  }, async (request) => batches.status(request.params.batchId));

  app.get<BatchParams>('/v1/batches/:batchId/report', {
    schema: { summary: 'The report (while running: the problems so far)', tags: ['batches'], params: batchIdParams, response: responses(openObject) },
  }, async (request) => batches.report(request.params.batchId));

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post<BatchParams>(`/v1/batches/:batchId/${action}`, {
      schema: { summary: `${action[0]!.toUpperCase()}${action.slice(1)} a running batch, as this token's operator (signed for the named token)`, tags: ['batches'], params: batchIdParams, response: responses(openObject) },
    }, async (request) => {
      try {
        return await batches[action](request.params.batchId, signerFor(operatorOf(request)));
      } catch (error) {
        // An update to a batch that has ended fails as "not found": say which it is.
        if (error instanceof Error && error.name === 'WorkflowNotFoundError' && (await batchHasEnded(batches, request.params.batchId))) {
          throw new BackupActionRejectedError(`${action} refused: batch ${request.params.batchId} has already ended (see its report)`);
        }
        throw error;
      }
    });
  }
}

async function batchHasEnded(batches: BatchClient, batchId: string): Promise<boolean> {
  try {
    await batches.status(batchId);
    return true;
  } catch {
    return false;
  }
}
