import type { ApiApp } from './api-app';
import type { BackupClient } from '../../client/backup-client';
import type { RecoveryClient } from '../../client/recovery-client';
import { IDEMPOTENCY_KEY_HEADER, parseIdempotencyKey } from '../../domain/idempotency-key';
import { idempotencyKeyHeaders, openObject, recoveryStartBody, rejectBody, responses, startedAnswer, userIdParams } from '../schemas';
import { operatorOf, registerParkableRunRoutes } from './parkable-runs';
import type { OperatorSigner } from '../../client/operator-signer';
import { registerListRoute } from './fleet-runs';

type UserParams = { Params: { userId: string } };

/** `/v1/backups`: start (idempotent), status, result, retry, abandon (retry and abandon signed for the named token that asks). */
export function registerBackupRoutes(app: ApiApp, backups: BackupClient, signerFor: (operator: string | undefined) => OperatorSigner): void {
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
  registerParkableRunRoutes(app, {
    path: '/v1/backups',
    tag: 'backups',
    noun: 'backup',
    temporal: backups.temporal,
    status: (userId) => backups.getBackupStatus(userId),
    wait: (userId) => backups.waitForBackup(userId),
    retry: (userId, _by, operator) => backups.retryBackup(userId, signerFor(operator)),
    abandon: (userId, reason, _by, operator) => backups.abandonBackup(userId, reason, signerFor(operator)),
  });
}

/**
 * `/v1/recoveries`: start (idempotent, with a fresh backup after by default), approve, reject, status,
 * result, retry, abandon. Start, approve, reject, retry and abandon are operator acts: signed by the
 * API for the named token that asks (its name is the identity the workers verify).
 */
export function registerRecoveryRoutes(app: ApiApp, recoveries: RecoveryClient, signerFor: (operator: string | undefined) => OperatorSigner): void {
  const as = (request: object) => recoveries.as(signerFor(operatorOf(request)));
  app.post<UserParams & { Body: { freshBackup?: boolean } }>('/v1/recoveries/:userId', {
    schema: {
      summary: "Request a recovery of the user's wallet from its newest completed backup (idempotent); it waits for the approvals of other operators (AWAITING_APPROVAL)",
      tags: ['recoveries'], params: userIdParams, body: recoveryStartBody, response: responses(startedAnswer, 202),
    },
  }, async (request, reply) => reply.code(202).send(await as(request).startRecovery(request.params.userId, { freshBackup: request.body?.freshBackup !== false })));
  app.post<UserParams>('/v1/recoveries/:userId/approve', {
    schema: { summary: "Approve the user's recovery waiting for approval, as this token's operator (not the requester; twice counts once)", tags: ['recoveries'], params: userIdParams, response: responses(openObject) },
  }, async (request) => as(request).approveRecovery(request.params.userId));
  app.post<UserParams & { Body: { reason: string } }>('/v1/recoveries/:userId/reject', {
    schema: { summary: "Reject the user's recovery waiting for approval: it ends with the reason", tags: ['recoveries'], params: userIdParams, body: rejectBody, response: responses(openObject) },
  }, async (request) => as(request).rejectRecovery(request.params.userId, request.body.reason));
  registerListRoute(app, '/v1/recoveries', 'recoveries', 'Recoveries (?status=NEEDS_ATTENTION for the parked ones)', (options) => recoveries.list(options));
  registerParkableRunRoutes(app, {
    path: '/v1/recoveries',
    tag: 'recoveries',
    noun: 'recovery',
    temporal: recoveries.temporal,
    status: (userId) => recoveries.getRecoveryStatus(userId),
    wait: (userId) => recoveries.waitForRecovery(userId),
    retry: (userId, _by, operator) => recoveries.as(signerFor(operator)).retryRecovery(userId),
    abandon: (userId, reason, _by, operator) => recoveries.as(signerFor(operator)).abandonRecovery(userId, reason),
  });
}
