import type { ApiApp } from './api-app';
import type { Client } from '@temporalio/client';
import { abandonBody, openObject, responses, retryBody, userIdParams, waitQuery } from '../schemas';
import { waitOrStatus } from './wait-or-status';

type UserParams = { Params: { userId: string } };
type WaitParams = UserParams & { Querystring: { waitSeconds: number } };

/** What the API needs of a client of one kind of parkable run (backups, recoveries). */
export interface ParkableRunRoutes {
  /** `/v1/backups`, `/v1/recoveries`. */
  path: string;
  tag: string;
  /** "backup", "recovery": the summaries name the run. */
  noun: string;
  temporal: Client;
  status(userId: string): Promise<unknown>;
  wait(userId: string): Promise<unknown>;
  /** `operator`: the named API token's identity (recoveries sign with it), if the token has a name. */
  retry(userId: string, requestedBy: string | undefined, operator: string | undefined): Promise<unknown>;
  abandon(userId: string, reason: string, requestedBy: string | undefined, operator: string | undefined): Promise<unknown>;
}

/**
 * The routes every parkable run has, one shape for backups and recoveries: its status, a wait for
 * its result, and the operator's retry and abandon of a run parked as NEEDS_ATTENTION.
 */
export function registerParkableRunRoutes(app: ApiApp, runs: ParkableRunRoutes): void {
  const { path, tag, noun } = runs;
  app.get<UserParams>(`${path}/:userId`, {
    schema: { summary: `The user's latest ${noun}: status, step, attempts, last error, result`, tags: [tag], params: userIdParams, response: responses(openObject) },
  }, async (request) => runs.status(request.params.userId));

  app.get<WaitParams>(`${path}/:userId/result`, {
    schema: {
      summary: `Wait up to waitSeconds for the ${noun} to end: 200 with the result, 409 if it did not complete, 202 with the status if still running`,
      tags: [tag], params: userIdParams, querystring: waitQuery, response: { ...responses(openObject), 202: openObject },
    },
  }, async (request, reply) =>
    waitOrStatus(reply, request.query.waitSeconds, (signal) => runs.temporal.withAbortSignal(signal, () => runs.wait(request.params.userId)), () => runs.status(request.params.userId)));

  app.post<UserParams & { Body: { requestedBy?: string } }>(`${path}/:userId/retry`, {
    schema: { summary: `Resume a ${noun} parked as NEEDS_ATTENTION`, tags: [tag], params: userIdParams, body: retryBody, response: responses(openObject) },
  }, async (request) => runs.retry(request.params.userId, request.body?.requestedBy, operatorOf(request)));

  app.post<UserParams & { Body: { reason: string; requestedBy?: string } }>(`${path}/:userId/abandon`, {
    schema: { summary: `Give up a parked ${noun}; the reason is kept in its history`, tags: [tag], params: userIdParams, body: abandonBody, response: responses(openObject) },
  }, async (request) => runs.abandon(request.params.userId, request.body.reason, request.body.requestedBy, operatorOf(request)));
}

/** The named token's identity the request acts as (api-server.ts sets it), if any. */
export function operatorOf(request: object): string | undefined {
  return (request as { operator?: string }).operator;
}
