import { KeysClient } from '../../client/keys-client';
import { DrillClient } from '../../client/drill-client';
import SwaggerParser from '@apidevtools/swagger-parser';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../api/api-server';
import { BatchClient } from '../../client/batch-client';
import { RecoveryClient } from '../../client/recovery-client';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { API_SIGNER, signaturesOf } from '../support/operators';

/** The HTTP API over the real stack, called with a real HTTP client (fetch). */
const TOKENS = ['api-token-current-0123456789abcdef', 'api-token-previous-0123456789abcdef'];
/** Named tokens: the name is the operator identity the API signs for (ops-carol requests, ops-alice and ops-bob approve). */
const OPERATOR_TOKENS = { 'ops-carol': 'carol-token-0123456789abcdefghij', 'ops-alice': 'alice-token-0123456789abcdefghij', 'ops-bob': 'bob-token-0123456789abcdefghijkl' };
let env: BackupTestEnv;
let app: Awaited<ReturnType<typeof createApiServer>>;
let base: string;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
  app = await createApiServer({
    backups: env.backups,
    recoveries: new RecoveryClient(env.backups.temporal, env.taskQueue),
    batches: new BatchClient(env.backups.temporal, env.taskQueue),
    drills: new DrillClient(env.backups.temporal, env.taskQueue),
    keys: new KeysClient(env.backups.temporal, env.taskQueue),
    tokens: [...TOKENS, ...Object.entries(OPERATOR_TOKENS).map(([name, token]) => ({ name, token }))],
    // The API's own Vault token may sign only with its key (seeded by the test stack's global setup).
    operatorSigning: { signatures: signaturesOf(API_SIGNER), keyName: 'mpc-backup-api' },
    bodyLimitBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await env?.close();
});

async function call(method: string, path: string, body?: unknown, token: string | null = TOKENS[0]!, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined, headers: response.headers };
}

describe('HTTP API', () => {
  it('serves a valid OpenAPI 3 document naming every route, without a token', async () => {
    const { status, body } = await call('GET', '/openapi.json', undefined, null);
    expect(status).toBe(200);
    const document = (await SwaggerParser.validate(structuredClone(body) as never)) as unknown as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).toMatch(/^3\./);
    expect(Object.keys(document.paths).sort()).toEqual(
      [
        '/v1/backups/{userId}',
        '/v1/backups/{userId}/result',
        '/v1/backups/{userId}/retry',
        '/v1/backups/{userId}/abandon',
        '/v1/recoveries/{userId}',
        '/v1/recoveries/{userId}/result',
        '/v1/recoveries/{userId}/retry',
        '/v1/recoveries/{userId}/abandon',
        '/v1/recoveries/{userId}/approve',
        '/v1/recoveries/{userId}/reject',
        '/v1/batches',
        '/v1/batches/{batchId}',
        '/v1/batches/{batchId}/report',
        '/v1/batches/{batchId}/pause',
        '/v1/batches/{batchId}/resume',
        '/v1/batches/{batchId}/cancel',
        '/v1/batches/{batchId}/problems',
        '/v1/recoveries',
        '/v1/drills',
        '/v1/drills/{drillId}',
        '/v1/key-rotations',
        '/v1/key-rotation',
        '/v1/coverage',
      ].sort(),
    );
    expect(Object.keys(document.paths['/v1/backups/{userId}']!).sort()).toEqual(['get', 'post']);
    const start = document.paths['/v1/backups/{userId}']!.post as { parameters: { in: string; name: string; required?: boolean }[] };
    expect(start.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false }));
  });

  it('refuses a missing or wrong token with 401, and takes either configured token (rotation)', async () => {
    const userId = env.seedUser('api-auth');
    expect((await call('POST', `/v1/backups/${userId}`, undefined, null)).status).toBe(401);
    const wrong = await call('POST', `/v1/backups/${userId}`, undefined, 'not-a-token-but-long-enough-000000');
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer');
    expect(wrong.body).toMatchObject({ error: 'Unauthorized' });
    // Nothing started for the refused requests.
    expect((await call('GET', `/v1/backups/${userId}`)).status).toBe(404);
    expect((await call('POST', `/v1/backups/${userId}`, undefined, TOKENS[1]!)).status).toBe(202);
    await env.backups.waitForBackup(userId);
  });

  it('starts a backup idempotently, waits for its result and shows its status', async () => {
    const userId = env.seedUser('api-backup');
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 1_000, count: 1, userId });
    const first = await call('POST', `/v1/backups/${userId}`);
    const second = await call('POST', `/v1/backups/${userId}`);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ userId, workflowId: `backup-${userId}`, alreadyRunning: false });
    expect(second.body).toMatchObject({ runId: first.body!.runId, alreadyRunning: true });
    const result = await call('GET', `/v1/backups/${userId}/result?waitSeconds=30`);
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ userId, status: 'COMPLETED' });
    const status = await call('GET', `/v1/backups/${userId}`);
    expect(status.body).toMatchObject({ execution: 'COMPLETED', status: 'COMPLETED', step: 'DONE' });
  });

  it('Idempotency-Key: the same key after the run closed returns that run, not a second backup; without one a start is a new backup', async () => {
    const userId = env.seedUser('api-idem');
    const key = { 'Idempotency-Key': `order-${userId}` };
    const pairs = () => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs).length;
    const first = await call('POST', `/v1/backups/${userId}`, undefined, TOKENS[0]!, key);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ alreadyRunning: false, idempotentReplay: false });
    expect((await call('GET', `/v1/backups/${userId}/result?waitSeconds=30`)).status).toBe(200);
    const retried = await call('POST', `/v1/backups/${userId}`, undefined, TOKENS[0]!, key);
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ runId: first.body!.runId, alreadyRunning: false, idempotentReplay: true });
    expect(pairs()).toBe(2);
    const unkeyed = await call('POST', `/v1/backups/${userId}`);
    expect(unkeyed.body).toMatchObject({ alreadyRunning: false, idempotentReplay: false });
    expect(unkeyed.body!.runId).not.toBe(first.body!.runId);
    expect((await call('GET', `/v1/backups/${userId}/result?waitSeconds=30`)).status).toBe(200);
    expect(pairs()).toBe(4);
    const bad = await call('POST', `/v1/backups/${userId}`, undefined, TOKENS[0]!, { 'Idempotency-Key': 'not a key' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'InvalidIdempotencyKeyError' });
    expect(String(bad.body!.message)).toContain('character 4');
  });

  it('validates requests with clear 400 bodies before anything reaches Temporal', async () => {
    const badId = await call('POST', '/v1/backups/bad%20id');
    expect(badId.status).toBe(400);
    expect(badId.body).toMatchObject({ error: 'InvalidRequest' });
    expect(String(badId.body!.message)).toContain('userId');
    const noReason = await call('POST', '/v1/backups/u1/abandon', { reason: '' });
    expect(noReason.status).toBe(400);
    expect(String(noReason.body!.message)).toMatch(/reason/);
    const unknownField = await call('POST', '/v1/batches', { source: { kind: 'list', userIds: ['u1'] }, concurency: 3 });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body!.message).toBe('body.concurency: unknown field (remove it, or check its spelling)');
    const wait = await call('GET', '/v1/backups/u1/result?waitSeconds=3600');
    expect(wait.status).toBe(400);
    expect(String(wait.body!.message)).toMatch(/waitSeconds/);
  });

  it('parks, retries and abandons through the API, with 409 for actions on a backup that is not parked', async () => {
    const userId = env.seedUser('api-park');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 403, userId });
    await call('POST', `/v1/backups/${userId}`);
    await eventually('the backup to park', async () => ((await call('GET', `/v1/backups/${userId}`)).body?.status === 'NEEDS_ATTENTION' ? true : undefined));
    const stillRunning = await call('GET', `/v1/backups/${userId}/result?waitSeconds=1`);
    expect(stillRunning.status).toBe(202);
    expect(stillRunning.body).toMatchObject({ status: 'NEEDS_ATTENTION', step: 'MARK' });
    // Retry and abandon are operator acts: an unnamed token is refused; a named one's act is signed by the API and verified.
    const unnamed = await call('POST', `/v1/backups/${userId}/abandon`, { reason: 'key revoked (test)', requestedBy: 'api-test' });
    expect(unnamed.status).toBe(403);
    expect(String(unnamed.body!.message)).toContain('named API token');
    const abandoned = await call('POST', `/v1/backups/${userId}/abandon`, { reason: 'key revoked (test)', requestedBy: 'api-test' }, OPERATOR_TOKENS['ops-carol']);
    expect(abandoned.status).toBe(200);
    expect(abandoned.body).toMatchObject({ status: 'ABANDONED', decidedBy: 'ops-carol' });
    const result = await call('GET', `/v1/backups/${userId}/result?waitSeconds=10`);
    expect(result.status).toBe(409);
    expect(result.body).toMatchObject({ error: 'BackupAbandoned' });
    // No body at all (the body is optional): refused because the backup ended, not as a bad request.
    const again = await call('POST', `/v1/backups/${userId}/retry`, undefined, OPERATOR_TOKENS['ops-carol']);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: 'BackupActionRejectedError' });
    expect(String(again.body!.message)).toContain('has already ended (FAILED)');
    const never = await call('POST', `/v1/backups/${env.seedUser('api-never')}/retry`, undefined, OPERATOR_TOKENS['ops-carol']);
    expect(never.status).toBe(404);
    expect(String(never.body!.message)).toContain('no backup was ever started');
    env.simulator.faults.clear();
  });

  it('runs a recovery and a batch', async () => {
    const userId = env.seedUser('api-recover');
    await call('POST', `/v1/backups/${userId}`);
    await call('GET', `/v1/backups/${userId}/result?waitSeconds=30`);
    // An unnamed token is no operator: it cannot request a recovery.
    const anonymous = await call('POST', `/v1/recoveries/${userId}`, { freshBackup: false });
    expect(anonymous.status).toBe(403);
    expect(String(anonymous.body!.message)).toContain('named API token');
    const started = await call('POST', `/v1/recoveries/${userId}`, { freshBackup: false }, OPERATOR_TOKENS['ops-carol']);
    expect(started.status).toBe(202);
    const waiting = await eventually('the recovery to await approval', async () => {
      const status = await call('GET', `/v1/recoveries/${userId}`);
      return status.body?.status === 'AWAITING_APPROVAL' && (status.body.progress as { approval?: { expiresAt?: string } })?.approval?.expiresAt ? status.body : undefined;
    });
    expect(waiting).toMatchObject({ step: 'APPROVAL', progress: { approval: { requestedBy: 'ops-carol', required: 2, approvedBy: [] } } });
    // The requester cannot approve; an approver twice counts once; a second approver completes it.
    const self = await call('POST', `/v1/recoveries/${userId}/approve`, undefined, OPERATOR_TOKENS['ops-carol']);
    expect(self.status).toBe(409);
    expect(String(self.body!.message)).toContain('ops-carol requested this recovery and cannot approve it');
    expect((await call('POST', `/v1/recoveries/${userId}/approve`, undefined, OPERATOR_TOKENS['ops-alice'])).status).toBe(200);
    const again = await call('POST', `/v1/recoveries/${userId}/approve`, undefined, OPERATOR_TOKENS['ops-alice']);
    expect((again.body as { approval: { approvedBy: { operator: string }[] } }).approval.approvedBy.map((entry) => entry.operator)).toEqual(['ops-alice']);
    expect((await call('POST', `/v1/recoveries/${userId}/approve`, undefined, OPERATOR_TOKENS['ops-bob'])).status).toBe(200);
    const recovered = await call('GET', `/v1/recoveries/${userId}/result?waitSeconds=30`);
    expect(recovered.status).toBe(200);
    expect(recovered.body).toMatchObject({ userId, status: 'COMPLETED', approval: { requestedBy: 'ops-carol', approvedBy: [{ operator: 'ops-alice' }, { operator: 'ops-bob' }] } });

    // A rejection through the API ends the run with the reason.
    const rejectedUser = env.seedUser('api-reject');
    expect((await call('POST', `/v1/recoveries/${rejectedUser}`, { freshBackup: false }, OPERATOR_TOKENS['ops-carol'])).status).toBe(202);
    await eventually('the recovery to await approval', async () => ((await call('GET', `/v1/recoveries/${rejectedUser}`)).body?.progress as { approval?: unknown })?.approval);
    expect((await call('POST', `/v1/recoveries/${rejectedUser}/reject`, { reason: 'not requested by the user' }, OPERATOR_TOKENS['ops-bob'])).status).toBe(200);
    const rejected = await call('GET', `/v1/recoveries/${rejectedUser}/result?waitSeconds=30`);
    expect(rejected.status).toBe(409);
    expect(String(rejected.body!.message)).toContain('rejected by ops-bob: not requested by the user');

    const users = [env.seedUser('api-batch'), env.seedUser('api-batch')];
    const batch = await call('POST', '/v1/batches', { source: { kind: 'list', userIds: users }, concurrency: 2, backupsPerMinute: 600 });
    expect(batch.status).toBe(202);
    const batchId = String(batch.body!.batchId);
    const done = await eventually('the batch to finish', async () => {
      const status = await call('GET', `/v1/batches/${encodeURIComponent(batchId)}`);
      return status.body?.status === 'COMPLETED' ? status.body : undefined;
    });
    expect(done).toMatchObject({ counts: expect.objectContaining({ completed: 2 }) });
    expect((await call('POST', `/v1/batches/${encodeURIComponent(batchId)}/pause`)).status).toBe(403);
    expect((await call('POST', `/v1/batches/${encodeURIComponent(batchId)}/pause`, undefined, OPERATOR_TOKENS['ops-carol'])).status).toBe(409);
    expect((await call('GET', '/v1/batches/no-such-batch')).status).toBe(404);

    // The lists: the batch with its counts, the recovery by status; a status the kind has not, refused naming those it has.
    // Visibility records a closed run shortly after it closes: wait for the entries, then check them.
    const listed = await eventually('the batch to be listed as completed', async () => {
      const entries = (await call('GET', '/v1/batches?status=COMPLETED&limit=50')).body as unknown as { id: string }[];
      return entries.find((entry) => entry.id === batchId);
    });
    expect(listed).toMatchObject({ execution: 'COMPLETED', status: 'COMPLETED', counts: expect.objectContaining({ completed: 2 }) });
    await eventually('the recovery to be listed as completed', async () => {
      const entries = (await call('GET', '/v1/recoveries?status=COMPLETED&limit=50')).body as unknown as { id: string }[];
      return entries.some((entry) => entry.id === userId) ? true : undefined;
    });
    const parked = await call('GET', '/v1/batches?status=NEEDS_ATTENTION');
    expect(parked.status).toBe(400);
    expect(String(parked.body!.message)).toContain('use one of RUNNING, COMPLETED, FAILED');
    expect((await call('GET', `/v1/batches/${encodeURIComponent(batchId)}/problems`)).body).toEqual([]);
  });
});
