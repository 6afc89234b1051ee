import type { DrillClient } from '../../client/drill-client';
import type { KeysClient } from '../../client/keys-client';
import type { ListRunsOptions } from '../../client/run-list';
import { listAnswer, listQuery, openObject, responses } from '../schemas';
import type { ApiApp } from './api-app';

type ListParams = { Querystring: { status?: string; limit: number } };

export const listOptions = (query: { status?: string; limit: number }): ListRunsOptions => ({ ...(query.status ? { status: query.status } : {}), limit: query.limit });

/** A `GET <path>` list route: runs of one kind, newest first, `?status=&limit=`. */
export function registerListRoute(app: ApiApp, path: string, tag: string, what: string, list: (options: ListRunsOptions) => Promise<unknown>): void {
  app.get<ListParams>(path, {
    schema: { summary: `${what}, newest first: status, times, counts (?status= filters, ?limit= caps, default 20)`, tags: [tag], querystring: listQuery, response: responses(listAnswer) },
  }, async (request) => list(listOptions(request.query)));
}

/** `/v1/drills` (list, one drill's report) and `/v1/key-rotations` (list) with `/v1/key-rotation` (the latest one's status). */
export function registerDrillAndRotationRoutes(app: ApiApp, drills: DrillClient, keys: KeysClient): void {
  registerListRoute(app, '/v1/drills', 'drills', 'Restore drills', (options) => drills.list(options));
  app.get<{ Params: { drillId: string } }>('/v1/drills/:drillId', {
    schema: {
      summary: "A drill's report: counts and every failure found (while it runs: the report so far)",
      tags: ['drills'],
      params: { type: 'object', required: ['drillId'], properties: { drillId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } } },
      response: responses(openObject),
    },
  }, async (request) => drills.report(request.params.drillId));
  registerListRoute(app, '/v1/key-rotations', 'key rotation', 'Key rotations', (options) => keys.list(options));
  app.get('/v1/key-rotation', {
    schema: { summary: 'The latest key rotation: key versions, counts, rate, ETA, deferred users, retrying activities; its report once done', tags: ['key rotation'], response: responses(openObject) },
  }, async () => keys.status());
}
