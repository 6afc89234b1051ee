import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import {
  CredentialsInvalidError,
  CredentialsUnavailableError,
  UnknownUserError,
} from '../../domain/errors';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

let simulator: PortalSimulator;
let source: HttpCredentialsSource;

beforeAll(async () => {
  simulator = await startPortalSimulator({ backendToken: 'backend-secret' });
  source = new HttpCredentialsSource({
    urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`,
    authHeader: { name: 'Authorization', value: 'Bearer backend-secret' },
    timeoutMs: 2_000,
  });
});
afterAll(() => simulator?.close());

describe('HttpCredentialsSource against the simulated company backend', () => {
  it('loads the key and the generate response as Portal’s JSON string', async () => {
    const client = simulator.state.seedUser('cred-ok');
    await expect(source.load('cred-ok')).resolves.toEqual({
      clientApiKey: client.apiKey,
      generateResponse: client.generateResponse,
    });
  });

  it('accepts the generate response as an object too', async () => {
    simulator.state.seedUser('cred-object');
    simulator.faults.add({
      route: 'credentials',
      kind: 'status',
      status: 200,
      body: { clientApiKey: 'k', generateResponse: { SECP256K1: { id: 'a', share: 'YQ==' } } },
      count: 1,
      userId: 'cred-object',
    });
    expect((await source.load('cred-object')).generateResponse).toBe('{"SECP256K1":{"id":"a","share":"YQ=="}}');
  });

  it.each([
    ['no key', { generateResponse: '{}' }, /clientApiKey/],
    ['an empty key', { clientApiKey: '', generateResponse: '{}' }, /clientApiKey/],
    ['a generate response that is not a JSON object', { clientApiKey: 'k', generateResponse: '[1,2]' }, /not a JSON object/],
  ])('refuses a record with %s', async (_what, body, message) => {
    simulator.faults.add({ route: 'credentials', kind: 'status', status: 200, body, count: 1, userId: 'cred-bad' });
    const error = await source.load('cred-bad').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CredentialsInvalidError);
    expect((error as Error).message).toMatch(message);
  });

  it('a user it does not know is UnknownUserError', async () => {
    await expect(source.load('nobody')).rejects.toBeInstanceOf(UnknownUserError);
  });

  it('5xx and garbled bodies are retryable; a wrong backend token is not', async () => {
    simulator.state.seedUser('cred-flaky');
    simulator.faults.add({ route: 'credentials', kind: 'status', status: 503, count: 1, userId: 'cred-flaky' });
    await expect(source.load('cred-flaky')).rejects.toBeInstanceOf(CredentialsUnavailableError);
    simulator.faults.add({ route: 'credentials', kind: 'malformed', count: 1, userId: 'cred-flaky' });
    await expect(source.load('cred-flaky')).rejects.toBeInstanceOf(CredentialsUnavailableError);
    const unauthorised = new HttpCredentialsSource({ urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`, timeoutMs: 2_000 });
    await expect(unauthorised.load('cred-flaky')).rejects.toThrow(/CREDENTIALS_AUTH_HEADER/);
  });
});
