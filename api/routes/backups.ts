import type { ApiApp } from './api-app';
import type { BackupClient } from '../../client/backup-client';
import type { RecoveryClient } from '../../client/recovery-client';
import { IDEMPOTENCY_KEY_HEADER, parseIdempotencyKey } from '../../domain/idempotency-key';
import { idempotencyKeyHeaders, recoveryStartBody, responses, startedAnswer, userIdParams } from '../schemas';
import { registerParkableRunRoutes } from './parkable-runs';
import { registerListRoute } from './fleet-runs';

type UserParams = { Params: { userId: string } };

/** `/v1/backups`: start (idempotent), status, result, retry, abandon. */
export function registerBackupRoutes(app: ApiApp, backups: BackupClient): void {
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
    retry: (userId, by) => backups.retryBackup(userId, by),
    abandon: (userId, reason, by) => backups.abandonBackup(userId, reason, by),
  });
}

/** `/v1/recoveries`: start (idempotent, with a fresh backup after by default), status, result, retry, abandon. */
export function registerRecoveryRoutes(app: ApiApp, recoveries: RecoveryClient): void {
  app.post<UserParams & { Body: { freshBackup?: boolean } }>('/v1/recoveries/:userId', {
    schema: { summary: "Start a recovery of the user's wallet from its newest completed backup (idempotent)", tags: ['recoveries'], params: userIdParams, body: recoveryStartBody, response: responses(startedAnswer, 202) },
  }, async (request, reply) => reply.code(202).send(await recoveries.startRecovery(request.params.userId, { freshBackup: request.body?.freshBackup !== false })));
  registerListRoute(app, '/v1/recoveries', 'recoveries', 'Recoveries (?status=NEEDS_ATTENTION for the parked ones)', (options) => recoveries.list(options));
  registerParkableRunRoutes(app, {
    path: '/v1/recoveries',
    tag: 'recoveries',
    noun: 'recovery',
    temporal: recoveries.temporal,
    status: (userId) => recoveries.getRecoveryStatus(userId),
    wait: (userId) => recoveries.waitForRecovery(userId),
    retry: (userId, by) => recoveries.retryRecovery(userId, by),
    abandon: (userId, reason, by) => recoveries.abandonRecovery(userId, reason, by),
  });
}
