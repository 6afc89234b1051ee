import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { startPortalSimulator, type PortalSimulator, type PortalSimulatorOptions } from '../../simulator/portal-simulator';

// fastify.inject runs the same hooks and routes as a socket; its remoteAddress stands in for a peer.
const REMOTE = '10.1.2.3';
const ADMIN_REFUSAL = 'the admin API only answers loopback callers; start the simulator with --open-admin to allow others';
const BACKEND_REFUSAL =
  'the simulated company backend only answers loopback callers; start the simulator with --open-backend to allow others';
const BACKEND_TOKEN = 'backend-secret';

/** An IPv4 address of this machine that is not loopback, to be a real non-loopback peer. */
const EXTERNAL_IPV4 = Object.values(networkInterfaces())
  .flat()
  .find((address) => address?.family === 'IPv4' && !address.internal)?.address;

const started: PortalSimulator[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((simulator) => simulator.close()));
});

async function start(options: PortalSimulatorOptions = {}): Promise<PortalSimulator> {
  const simulator = await startPortalSimulator(options);
  started.push(simulator);
  return simulator;
}

function call(simulator: PortalSimulator, url: string, remoteAddress = '127.0.0.1', authorization?: string) {
  return simulator.app.inject({ method: 'GET', url, remoteAddress, headers: authorization ? { authorization } : {} });
}

describe('Portal simulator: admin API access', () => {
  it('answers loopback callers', async () => {
    const simulator = await start();
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      const response = await call(simulator, '/admin/calls', address);
      expect(response.statusCode, address).toBe(200);
    }
  });

  it('refuses other callers with 403 and says how to open it', async () => {
    const simulator = await start();
    simulator.state.seedUser('u1');
    for (const address of [REMOTE, '::ffff:10.1.2.3', 'fd00::2', '128.0.0.1']) {
      for (const url of ['/admin/calls', '/admin/users/u1', '/admin/faults']) {
        const response = await call(simulator, url, address);
        expect(response.statusCode, `${address} ${url}`).toBe(403);
        expect(response.json()).toEqual({ id: 'FORBIDDEN', message: ADMIN_REFUSAL });
      }
    }
    // Refused before any handler: a fault cannot be planted from outside.
    const planted = await simulator.app.inject({
      method: 'POST',
      url: '/admin/faults',
      remoteAddress: REMOTE,
      payload: { route: '*', kind: 'status', status: 500 },
    });
    expect(planted.statusCode).toBe(403);
    expect(simulator.faults.list()).toEqual([]);
  });

  it('matches the route, not the spelling of the URL', async () => {
    const simulator = await start();
    for (const url of ['/admin/calls?x=1', '/%61dmin/calls', '/admin/calls/']) {
      const response = await call(simulator, url, REMOTE);
      expect(response.statusCode, url).not.toBe(200);
    }
  });

  it('answers other callers when opened with openAdmin', async () => {
    const simulator = await start({ openAdmin: true });
    const response = await call(simulator, '/admin/calls', REMOTE);
    expect(response.statusCode).toBe(200);
    // Opening the admin API leaves the backend closed.
    simulator.state.seedUser('u1');
    expect((await call(simulator, '/backend/users/u1/credentials', REMOTE)).statusCode).toBe(403);
  });

  it('leaves the Portal routes open to everyone', async () => {
    const simulator = await start();
    const client = simulator.state.seedUser('u1');
    expect((await call(simulator, '/health', REMOTE)).statusCode).toBe(200);
    expect((await call(simulator, '/api/v3/clients/me', REMOTE, `Bearer ${client.apiKey}`)).statusCode).toBe(200);
  });
});

describe('Portal simulator: company backend access', () => {
  it('refuses non-loopback callers to the credentials and user-list routes', async () => {
    const simulator = await start();
    simulator.state.seedUser('u1');
    for (const url of ['/backend/users/u1/credentials', '/backend/users']) {
      const response = await call(simulator, url, REMOTE);
      expect(response.statusCode, url).toBe(403);
      expect(response.json()).toEqual({ id: 'FORBIDDEN', message: BACKEND_REFUSAL });
    }
    expect(simulator.calls.credentials).toBeUndefined();
    expect((await call(simulator, '/backend/users/u1/credentials')).statusCode).toBe(200);
  });

  it('answers them when opened with openBackend', async () => {
    const simulator = await start({ openBackend: true });
    const client = simulator.state.seedUser('u1');
    const response = await call(simulator, '/backend/users/u1/credentials', REMOTE);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ clientApiKey: client.apiKey, generateResponse: client.generateResponse });
    expect((await call(simulator, '/backend/users', REMOTE)).json()).toMatchObject({ userIds: ['u1'] });
    // Opening the backend leaves the admin API closed.
    expect((await call(simulator, '/admin/calls', REMOTE)).statusCode).toBe(403);
  });

  it('checks the backend token', async () => {
    const simulator = await start({ backendToken: BACKEND_TOKEN });
    simulator.state.seedUser('u1');
    const url = '/backend/users/u1/credentials';
    const cases: Array<[string | undefined, number]> = [
      [undefined, 401],
      ['Bearer backend-secreT', 401],
      // Other lengths: compared as digests, so no length leak and no RangeError from timingSafeEqual.
      ['Bearer x', 401],
      [`Bearer ${BACKEND_TOKEN}${'x'.repeat(1000)}`, 401],
      [BACKEND_TOKEN, 401],
      [`Bearer ${BACKEND_TOKEN}`, 200],
    ];
    for (const [authorization, status] of cases) {
      const response = await call(simulator, url, '127.0.0.1', authorization);
      expect(response.statusCode, String(authorization)).toBe(status);
      if (status === 401) expect(response.json()).toEqual({ message: 'missing or wrong backend token' });
    }
    expect((await call(simulator, '/backend/users', '127.0.0.1', 'Bearer x')).statusCode).toBe(401);
  });
});

describe('Portal simulator: access over real sockets', () => {
  it('answers the admin API over loopback', async () => {
    const simulator = await start();
    const response = await fetch(`${simulator.url}/admin/calls`);
    expect(response.status).toBe(200);
  });

  it.skipIf(!EXTERNAL_IPV4)(`refuses a caller on this machine's non-loopback address (${EXTERNAL_IPV4})`, async () => {
    const simulator = await start({ host: '0.0.0.0' });
    const port = new URL(simulator.url).port;
    simulator.state.seedUser('u1');
    const admin = await fetch(`http://${EXTERNAL_IPV4}:${port}/admin/calls`);
    expect(admin.status).toBe(403);
    expect(await admin.json()).toEqual({ id: 'FORBIDDEN', message: ADMIN_REFUSAL });
    const backend = await fetch(`http://${EXTERNAL_IPV4}:${port}/backend/users/u1/credentials`);
    expect(backend.status).toBe(403);
    expect(await backend.json()).toEqual({ id: 'FORBIDDEN', message: BACKEND_REFUSAL });
    // The same server still answers loopback.
    expect((await fetch(`http://127.0.0.1:${port}/admin/calls`)).status).toBe(200);
  });

  it.skipIf(!EXTERNAL_IPV4)('answers that caller once opened', async () => {
    const simulator = await start({ host: '0.0.0.0', openAdmin: true, openBackend: true });
    const port = new URL(simulator.url).port;
    simulator.state.seedUser('u1');
    expect((await fetch(`http://${EXTERNAL_IPV4}:${port}/admin/calls`)).status).toBe(200);
    expect((await fetch(`http://${EXTERNAL_IPV4}:${port}/backend/users/u1/credentials`)).status).toBe(200);
  });
});
