import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ServiceError, type Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { failureOf } from '../support/failure-of';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchActivities } from '../../activities/batch/batch-activities';

let server: Server;
let requests = 0;
let origin: string;

beforeAll(async () => {
  server = createServer((_request, response) => {
    requests += 1;
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ userIds: ['u1'], nextCursor: null }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A Temporal client whose every call fails the way a restarting server's do (gRPC UNAVAILABLE). */
function unavailableTemporal(): Client {
  const grpcError = Object.assign(new Error('14 UNAVAILABLE: connection refused'), { code: 14, details: 'connection refused', metadata: {} });
  const fail = () => {
    throw new ServiceError('Failed to list workflows', { cause: grpcError });
  };
  return {
    workflow: {
      list: () => ({
        [Symbol.asyncIterator]: () => ({ next: fail }),
      }),
      getHandle: () => ({ describe: fail }),
    },
  } as unknown as Client;
}

describe('batch activities (MockActivityEnvironment)', () => {
  it('refuse a user source outside the allowed origins before sending it anything', async () => {
    const activities = createBatchActivities({
      temporal: unavailableTemporal(),
      heartbeatIntervalMs: 1_000,
      authHeader: { name: 'Authorization', value: 'Bearer backend-secret' },
      allowedSourceOrigins: ['https://backend.example.com'],
    });
    const before = requests;
    const failure = await failureOf(new MockActivityEnvironment().run(activities.fetchUserPage, { url: `${origin}/users`, limit: 10 }));
    expect(failure).toMatchObject({ type: 'BatchSourceNotAllowedError', nonRetryable: true });
    expect(failure.message).toContain('BATCH_SOURCE_ALLOWED_ORIGINS');
    expect(requests).toBe(before);

    const allowed = createBatchActivities({ temporal: unavailableTemporal(), heartbeatIntervalMs: 1_000, allowedSourceOrigins: [origin] });
    expect(await new MockActivityEnvironment().run(allowed.fetchUserPage, { url: `${origin}/users`, limit: 10 })).toEqual({ userIds: ['u1'] });
    expect(requests).toBe(before + 1);
  });

  it('treat a Temporal service outage as retryable, not as a permanent failure', async () => {
    const activities = createBatchActivities({ temporal: unavailableTemporal(), heartbeatIntervalMs: 1_000, allowedSourceOrigins: [] });
    const listing = await failureOf(
      new MockActivityEnvironment().run(activities.recentlyBackedUp, { userIds: ['u1'], since: new Date().toISOString() }),
    );
    expect(listing).toMatchObject({ type: 'TemporalUnavailableError', nonRetryable: false });
    const checking = await failureOf(new MockActivityEnvironment().run(activities.checkBackups, { userIds: ['u1'] }));
    expect(checking).toMatchObject({ type: 'TemporalUnavailableError', nonRetryable: false });
    expect(checking.message).toContain('UNAVAILABLE');
  });
});
