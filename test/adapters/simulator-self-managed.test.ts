import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CURVES } from '../../domain/curves';
import type { WebhookCallRecord } from '../../simulator/custodian-webhook';
import { startPortalSimulator, type PortalSimulator, type PortalSimulatorOptions } from '../../simulator/portal-simulator';
import type { SimClient } from '../../simulator/portal-state';

// The system under test is the simulator; the webhook here is a minimal stand-in for the company's.
const SECRET = 'whsec-test-0123456789';
const FAILED_WEBHOOK = { id: 'FAILED_WEBHOOK', message: 'Unable to send backup share to configured webhook' };

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A stand-in webhook: checks the secret, keeps each share once per client, answers fetch. */
interface StandIn {
  url: string;
  received: Received[];
  held: Map<string, string[]>;
  /** Knobs: the status /backup answers, a delay before answering, shares fetch leaves out. */
  behaviour: { backupStatus?: number; delayMs?: number; fetchOmits?: (share: string) => boolean };
  close(): Promise<void>;
}

async function startStandIn(): Promise<StandIn> {
  const received: Received[] = [];
  const held = new Map<string, string[]>();
  const behaviour: StandIn['behaviour'] = {};
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ path: request.url ?? '', headers: request.headers, body });
      const answer = (status: number, json?: unknown) => {
        const send = () => {
          if (response.destroyed) return;
          response.writeHead(status, json === undefined ? {} : { 'content-type': 'application/json' });
          response.end(json === undefined ? undefined : JSON.stringify(json));
        };
        if (behaviour.delayMs) setTimeout(send, behaviour.delayMs);
        else send();
      };
      if (request.headers['x-webhook-secret'] !== SECRET) return answer(401, { message: 'bad secret' });
      let parsed: { clientId?: unknown; backupMethod?: unknown; share?: unknown };
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch {
        return answer(400, { message: 'malformed' });
      }
      if (typeof parsed.clientId !== 'string') return answer(400, { message: 'clientId' });
      const shares = held.get(parsed.clientId) ?? [];
      if (request.url === '/backup') {
        if (typeof parsed.share !== 'string' || typeof parsed.backupMethod !== 'string') return answer(400, { message: 'fields' });
        if (!shares.includes(parsed.share)) shares.push(parsed.share);
        held.set(parsed.clientId, shares);
        return answer(behaviour.backupStatus ?? 200);
      }
      if (request.url === '/backup/fetch') {
        return answer(200, { backupShares: shares.filter((share) => !behaviour.fetchOmits?.(share)) });
      }
      return answer(404);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    held,
    behaviour,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function start(options: PortalSimulatorOptions = {}): Promise<PortalSimulator> {
  const simulator = await startPortalSimulator(options);
  cleanups.push(() => simulator.close());
  return simulator;
}

async function standIn(): Promise<StandIn> {
  const webhook = await startStandIn();
  cleanups.push(() => webhook.close());
  return webhook;
}

async function selfManaged(options: PortalSimulatorOptions & { timeoutMs?: number } = {}) {
  const webhook = await standIn();
  const { timeoutMs, ...rest } = options;
  const simulator = await start({
    selfManaged: { webhookUrl: webhook.url, webhookSecret: SECRET, ...(timeoutMs ? { timeoutMs } : {}) },
    ...rest,
  });
  return { webhook, simulator };
}

async function backup(simulator: PortalSimulator, client: SimClient) {
  const response = await fetch(`${simulator.url}/v1/backup`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ generateResponse: client.generateResponse }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, { id: string; share: string }> };
}

async function recover(simulator: PortalSimulator, client: SimClient, shares: Record<string, { id: string; share: string }>) {
  const response = await fetch(`${simulator.url}/v1/recover`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ backupResponse: JSON.stringify(shares) }),
  });
  return { status: response.status, body: (await response.json()) as unknown };
}

async function markCompleted(simulator: PortalSimulator, client: SimClient, pairIds: string[]) {
  const response = await fetch(`${simulator.url}/api/v3/clients/me/backup-share-pairs`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'STORED_CLIENT_BACKUP_SHARE', backupSharePairIds: pairIds }),
  });
  expect(response.status).toBe(204);
}

type ClientObject = {
  environment: { backupWithPortalEnabled?: boolean };
  wallets: { curve: string; backupSharePairs: { id: string; status: string; backupMethod: string }[] }[];
};

async function clientObject(simulator: PortalSimulator, client: SimClient): Promise<ClientObject> {
  const response = await fetch(`${simulator.url}/api/v3/clients/me`, { headers: { authorization: `Bearer ${client.apiKey}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as ClientObject;
}

async function admin<T>(simulator: PortalSimulator, path: string, init: { method?: string; body?: unknown } = {}) {
  const response = await fetch(`${simulator.url}${path}`, {
    method: init.method ?? 'GET',
    ...(init.body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(init.body) }),
  });
  return { status: response.status, text: await response.clone().text(), json: (await response.json()) as T };
}

async function deliveries(simulator: PortalSimulator, userId: string): Promise<WebhookCallRecord[]> {
  return (await admin<{ deliveries: WebhookCallRecord[] }>(simulator, `/admin/webhook-deliveries?userId=${userId}`)).json.deliveries;
}

const pairsOf = (simulator: PortalSimulator, userId: string) => simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const deliveriesTo = (webhook: StandIn) => webhook.received.filter((request) => request.path === '/backup');
const fetchesTo = (webhook: StandIn) => webhook.received.filter((request) => request.path === '/backup/fetch');

/** Pairs of the latest `/v1/backup` are incomplete, and no client share came back. */
async function expectFailedWebhook(simulator: PortalSimulator, client: SimClient, result: Awaited<ReturnType<typeof backup>>) {
  expect(result.status).toBe(500);
  expect(result.body).toEqual(FAILED_WEBHOOK);
  const view = await clientObject(simulator, client);
  const pairs = view.wallets.flatMap((wallet) => wallet.backupSharePairs);
  expect(pairs.length).toBeGreaterThan(0);
  expect(pairs.every((pair) => pair.status === 'incomplete')).toBe(true);
}

describe('Portal simulator: Portal-Managed by default', () => {
  it('shows backupWithPortalEnabled true and calls no webhook', async () => {
    const simulator = await start();
    const client = simulator.state.seedUser('pm');
    expect((await clientObject(simulator, client)).environment).toEqual({ id: 'env-sim', name: 'simulator', backupWithPortalEnabled: true });
    const result = await backup(simulator, client);
    expect(result.status).toBe(200);
    expect(Object.keys(result.body)).toEqual([...CURVES]);
    expect(simulator.webhookDeliveries).toEqual([]);
    expect((await admin(simulator, '/admin/self-managed')).json).toEqual({ selfManaged: null });
    // Portal keeps the custodian share; the admin view shows where it is, never the share.
    for (const pair of pairsOf(simulator, 'pm')) {
      expect(pair.custodianShare).toBeDefined();
      expect(pair.custodian).toMatchObject({ mode: 'portal-managed', delivery: 'not-applicable' });
    }
    const view = await admin<{ wallets: { backupSharePairs: Record<string, unknown>[] }[] }>(simulator, '/admin/users/pm');
    const adminPairs = view.json.wallets.flatMap((wallet) => wallet.backupSharePairs);
    expect(adminPairs.every((pair) => !('custodianShare' in pair) && (pair.custodian as { delivered: boolean }).delivered === false)).toBe(true);
    for (const pair of pairsOf(simulator, 'pm')) expect(view.text).not.toContain(JSON.parse(pair.custodianShare!).custodianShare);
  });
});

describe('Portal simulator: Self-Managed delivery', () => {
  it('delivers one custodian share per curve, validates with fetch, then answers with the client shares', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('sm');
    expect((await clientObject(simulator, client)).environment.backupWithPortalEnabled).toBe(false);

    const result = await backup(simulator, client);
    expect(result.status).toBe(200);
    expect(Object.keys(result.body)).toEqual([...CURVES]);
    expect(webhook.received.map((request) => request.path)).toEqual(['/backup', '/backup', '/backup/fetch']);

    const delivered = deliveriesTo(webhook);
    for (const [i, request] of delivered.entries()) {
      const curve = CURVES[i]!;
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.headers['x-webhook-secret']).toBe(SECRET);
      const body = JSON.parse(request.body) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['backupMethod', 'backupSharePairId', 'clientId', 'share']);
      expect(body).toMatchObject({ clientId: client.clientId, backupMethod: 'UNKNOWN', backupSharePairId: result.body[curve]!.id });
      // The share is a JSON string, distinct from the client share, and names its pair.
      expect(typeof body.share).toBe('string');
      const share = JSON.parse(body.share as string) as Record<string, unknown>;
      expect(share).toMatchObject({ backupSharePairId: result.body[curve]!.id, curve });
      expect(share.custodianShare).toMatch(/^[0-9a-f]{64}$/);
      expect(body.share).not.toBe(result.body[curve]!.share);
    }
    const fetchRequest = fetchesTo(webhook)[0]!;
    expect(fetchRequest.headers['x-webhook-secret']).toBe(SECRET);
    expect(JSON.parse(fetchRequest.body)).toEqual({ clientId: client.clientId });

    // Portal keeps no copy, only a digest; the pairs wait for the client half, as in Portal-Managed mode.
    const pairs = pairsOf(simulator, 'sm');
    for (const [i, pair] of pairs.entries()) {
      expect(pair.custodianShare).toBeUndefined();
      expect(pair.status).toBe('incomplete');
      expect(pair.custodian).toMatchObject({ mode: 'self-managed', delivery: 'delivered', validated: true });
      expect(pair.custodian.sha256).toBe(sha256((JSON.parse(delivered[i]!.body) as { share: string }).share));
    }
    const view = await clientObject(simulator, client);
    expect(view.wallets.flatMap((wallet) => wallet.backupSharePairs).map((pair) => [pair.status, pair.backupMethod])).toEqual([
      ['incomplete', 'UNKNOWN'],
      ['incomplete', 'UNKNOWN'],
    ]);
  });

  it('lists the deliveries in the admin API without share material, and shows per pair that it was delivered', async () => {
    const { webhook, simulator } = await selfManaged({ webhookBackupMethod: 'ENCLAVE' });
    const client = simulator.state.seedUser('listed');
    const result = await backup(simulator, client);
    expect(result.status).toBe(200);

    const listed = await admin<{ deliveries: WebhookCallRecord[] }>(simulator, '/admin/webhook-deliveries?userId=listed');
    expect(listed.json.deliveries.map((record) => [record.call, record.purpose, record.outcome, record.status])).toEqual([
      ['backup', 'backup', 'ok', 200],
      ['backup', 'backup', 'ok', 200],
      ['fetch', 'backup', 'ok', 200],
    ]);
    for (const [i, record] of listed.json.deliveries.slice(0, 2).entries()) {
      expect(record).toMatchObject({ userId: 'listed', clientId: client.clientId, pairId: result.body[CURVES[i]!]!.id, backupMethod: 'ENCLAVE' });
      expect(record.durationMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(record.at)).not.toBeNaN();
    }
    const users = await admin(simulator, '/admin/users/listed');
    const selfManagedView = await admin(simulator, '/admin/self-managed');
    for (const request of deliveriesTo(webhook)) {
      const share = (JSON.parse(request.body) as { share: string }).share;
      const secretPart = (JSON.parse(share) as { custodianShare: string }).custodianShare;
      for (const text of [listed.text, users.text, selfManagedView.text]) {
        expect(text).not.toContain(secretPart);
        expect(text).not.toContain(SECRET);
      }
    }
    const pairs = (users.json as { wallets: { backupSharePairs: { custodian: Record<string, unknown> }[] }[] }).wallets.flatMap(
      (wallet) => wallet.backupSharePairs,
    );
    expect(pairs.map((pair) => pair.custodian)).toEqual([
      expect.objectContaining({ delivered: true, delivery: 'delivered', validated: true, deliveredAt: expect.any(String) }),
      expect.objectContaining({ delivered: true, delivery: 'delivered', validated: true, deliveredAt: expect.any(String) }),
    ]);
    expect(selfManagedView.json).toEqual({
      selfManaged: { webhookUrl: `${webhook.url}/`, timeoutMs: 10_000, backupMethod: 'ENCLAVE', acceptWebhook204: false },
    });
    // The view of deliveries can be emptied.
    expect((await admin(simulator, '/admin/webhook-deliveries', { method: 'DELETE' })).json).toEqual({ deliveries: [] });
    expect(simulator.webhookDeliveries).toEqual([]);
  });
});

describe('Portal simulator: retainCustodianShares (an in-process test oracle)', () => {
  it('keeps the delivered shares in state, and still shows none through the admin API', async () => {
    const { webhook, simulator } = await selfManaged({ retainCustodianShares: true });
    const client = simulator.state.seedUser('kept');
    expect((await backup(simulator, client)).status).toBe(200);
    const sent = deliveriesTo(webhook).map((request) => (JSON.parse(request.body) as { share: string }).share);
    expect(pairsOf(simulator, 'kept').map((pair) => pair.custodianShare)).toEqual(sent);
    const view = await admin(simulator, '/admin/users/kept');
    for (const share of sent) expect(view.text).not.toContain((JSON.parse(share) as { custodianShare: string }).custodianShare);
  });
});

describe('Portal simulator: a failed webhook fails /v1/backup with FAILED_WEBHOOK', () => {
  it('when the webhook answers 500', async () => {
    const { webhook, simulator } = await selfManaged();
    webhook.behaviour.backupStatus = 500;
    const client = simulator.state.seedUser('w500');
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    // No retry, and no fetch after a failed delivery; the second curve is never sent.
    expect(webhook.received.map((request) => request.path)).toEqual(['/backup']);
    expect(pairsOf(simulator, 'w500').map((pair) => pair.custodian.delivery)).toEqual(['failed', 'not-sent']);
    expect(pairsOf(simulator, 'w500').every((pair) => pair.custodianShare === undefined)).toBe(true);
    expect((await deliveries(simulator, 'w500')).map((record) => [record.outcome, record.status, record.error])).toEqual([
      ['failed', 500, 'status 500'],
    ]);
  });

  it('when the webhook does not answer within the budget, without waiting for it', async () => {
    const { webhook, simulator } = await selfManaged({ timeoutMs: 1_000 });
    const webhookDelayMs = 30_000;
    webhook.behaviour.delayMs = webhookDelayMs;
    const client = simulator.state.seedUser('slow');
    const started = Date.now();
    const result = await backup(simulator, client);
    const elapsed = Date.now() - started;
    await expectFailedWebhook(simulator, client, result);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(webhookDelayMs); // Portal did not wait for the webhook's answer
    // The webhook received the share (and will keep it): Portal just gave up on it.
    expect(webhook.held.get(client.clientId)).toHaveLength(1);
    expect(await deliveries(simulator, 'slow')).toEqual([
      expect.objectContaining({ outcome: 'failed', error: 'timeout after 1000 ms', pairId: pairsOf(simulator, 'slow')[0]!.id }),
    ]);
  });

  it('when fetch leaves out a share just delivered', async () => {
    const { webhook, simulator } = await selfManaged();
    webhook.behaviour.fetchOmits = (share) => (JSON.parse(share) as { curve: string }).curve === 'ED25519';
    const client = simulator.state.seedUser('omits');
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    const pairs = pairsOf(simulator, 'omits');
    expect(pairs.map((pair) => [pair.custodian.delivery, pair.custodian.validated])).toEqual([
      ['delivered', false],
      ['delivered', false],
    ]);
    const fetchRecord = (await deliveries(simulator, 'omits')).find((record) => record.call === 'fetch')!;
    expect(fetchRecord).toMatchObject({ outcome: 'failed', status: 200, error: `share of pair ${pairs[1]!.id} missing` });
  });

  it('when the connection is refused', async () => {
    const port = await closedPort();
    const simulator = await start({ selfManaged: { webhookUrl: `http://127.0.0.1:${port}`, webhookSecret: SECRET } });
    const client = simulator.state.seedUser('refused');
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    expect(await deliveries(simulator, 'refused')).toEqual([expect.objectContaining({ outcome: 'failed', error: 'ECONNREFUSED' })]);
    expect(simulator.calls.webhookDelivery).toBe(1);
  });

  it('when the webhook answers 204, unless acceptWebhook204 is set', async () => {
    const { webhook, simulator } = await selfManaged();
    webhook.behaviour.backupStatus = 204;
    const client = simulator.state.seedUser('w204');
    await expectFailedWebhook(simulator, client, await backup(simulator, client));

    const lenient = await selfManaged({ acceptWebhook204: true });
    lenient.webhook.behaviour.backupStatus = 204;
    const other = lenient.simulator.state.seedUser('w204');
    expect((await backup(lenient.simulator, other)).status).toBe(200);
  });

  it('with the status and id set by webhookFailure', async () => {
    const port = await closedPort();
    const simulator = await start({
      selfManaged: { webhookUrl: `http://127.0.0.1:${port}`, webhookSecret: SECRET },
      webhookFailure: { status: 400, id: 'WEBHOOK_FAILED' },
    });
    const client = simulator.state.seedUser('custom');
    const result = await backup(simulator, client);
    expect(result.status).toBe(400);
    expect(result.body).toEqual({ id: 'WEBHOOK_FAILED', message: FAILED_WEBHOOK.message });
  });
});

describe('Portal simulator: switching the mode through the admin API', () => {
  it('PUT /admin/self-managed turns it on (validated), DELETE turns it off', async () => {
    const webhook = await standIn();
    const simulator = await start();
    const client = simulator.state.seedUser('switch');

    for (const body of [
      {},
      { webhookUrl: 'not a url', webhookSecret: SECRET },
      { webhookUrl: 'ftp://127.0.0.1/x', webhookSecret: SECRET },
      { webhookUrl: 'http://user:pw@127.0.0.1:1/x', webhookSecret: SECRET },
      { webhookUrl: webhook.url, webhookSecret: '' },
      { webhookUrl: webhook.url, webhookSecret: 'line\nbreak' },
      { webhookUrl: webhook.url, webhookSecret: SECRET, timeoutMs: 0 },
      { webhookUrl: webhook.url, webhookSecret: SECRET, extra: true },
    ]) {
      const refused = await admin<{ message: string }>(simulator, '/admin/self-managed', { method: 'PUT', body });
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.text).not.toContain(SECRET);
    }
    expect((await clientObject(simulator, client)).environment.backupWithPortalEnabled).toBe(true);

    const put = await admin(simulator, '/admin/self-managed', { method: 'PUT', body: { webhookUrl: webhook.url, webhookSecret: SECRET, timeoutMs: 2_000 } });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ selfManaged: { webhookUrl: `${webhook.url}/`, timeoutMs: 2_000, backupMethod: 'UNKNOWN', acceptWebhook204: false } });
    expect(put.text).not.toContain(SECRET);
    expect((await clientObject(simulator, client)).environment.backupWithPortalEnabled).toBe(false);
    expect((await backup(simulator, client)).status).toBe(200);
    expect(deliveriesTo(webhook)).toHaveLength(2);

    expect((await admin(simulator, '/admin/self-managed', { method: 'DELETE' })).json).toEqual({ selfManaged: null });
    expect((await clientObject(simulator, client)).environment.backupWithPortalEnabled).toBe(true);
    expect((await backup(simulator, client)).status).toBe(200);
    expect(deliveriesTo(webhook)).toHaveLength(2);
  });

  it('is loopback-only like the rest of the admin API', async () => {
    const simulator = await start();
    for (const [method, url] of [
      ['PUT', '/admin/self-managed'],
      ['DELETE', '/admin/self-managed'],
      ['GET', '/admin/self-managed'],
      ['GET', '/admin/webhook-deliveries'],
    ] as const) {
      const response = await simulator.app.inject({ method, url, remoteAddress: '10.1.2.3', payload: method === 'PUT' ? {} : undefined });
      expect(response.statusCode, `${method} ${url}`).toBe(403);
    }
  });
});

describe('Portal simulator: webhook faults', () => {
  async function planted(simulator: PortalSimulator, rule: Record<string, unknown>) {
    const response = await admin(simulator, '/admin/faults', { method: 'POST', body: rule });
    expect(response.status, JSON.stringify(rule)).toBe(200);
  }

  it('refuses webhook kinds on other routes, other kinds on the webhook routes, and keeps * rules off the webhook', async () => {
    const simulator = await start();
    for (const rule of [
      { route: 'backup', kind: 'webhook-duplicate' },
      { route: '*', kind: 'webhook-refused' },
      { route: 'webhookDelivery', kind: 'status', status: 500 },
      { route: 'webhookFetch', kind: 'webhook-duplicate' },
      { route: 'webhookFetch', kind: 'webhook-omit-pair-id' },
    ]) {
      expect((await admin(simulator, '/admin/faults', { method: 'POST', body: rule })).status, JSON.stringify(rule)).toBe(400);
    }
    simulator.faults.add({ route: '*', kind: 'latency', latencyMs: 1 });
    expect(simulator.faults.webhook('webhookDelivery', undefined)).toEqual([]);
    expect(simulator.faults.before('backup', undefined)).toHaveLength(1);
  });

  it('sends a wrong or missing secret', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('secret');
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-wrong-secret', count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    const wrong = deliveriesTo(webhook)[0]!.headers['x-webhook-secret'];
    expect(wrong).toMatch(/^wrong-/);
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-missing-secret', count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    expect(deliveriesTo(webhook)[1]!.headers).not.toHaveProperty('x-webhook-secret');
    expect((await deliveries(simulator, 'secret')).map((record) => [record.status, record.faults])).toEqual([
      [401, ['webhook-wrong-secret']],
      [401, ['webhook-missing-secret']],
    ]);
    // Faults on fetch too.
    await planted(simulator, { route: 'webhookFetch', kind: 'webhook-wrong-secret', count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    expect(fetchesTo(webhook)[0]!.headers['x-webhook-secret']).toMatch(/^wrong-/);
    expect((await backup(simulator, client)).status).toBe(200);
  });

  it('sends a malformed body: truncated JSON by default, or the rule’s body', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('malformed');
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-malformed', count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    const truncated = deliveriesTo(webhook)[0]!;
    expect(truncated.headers['content-type']).toBe('application/json');
    expect(() => JSON.parse(truncated.body) as unknown).toThrow();
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-malformed', body: { clientId: client.clientId }, count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    expect(JSON.parse(deliveriesTo(webhook)[1]!.body)).toEqual({ clientId: client.clientId });
    expect(webhook.held.get(client.clientId) ?? []).toEqual([]);
  });

  it('delivers the same share twice', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('dup');
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-duplicate', count: 1 });
    const result = await backup(simulator, client);
    expect(result.status).toBe(200);
    const sent = deliveriesTo(webhook);
    expect(sent).toHaveLength(3);
    expect(sent[0]!.body).toBe(sent[1]!.body);
    expect(webhook.held.get(client.clientId)).toHaveLength(2);
    expect((await deliveries(simulator, 'dup')).map((record) => [record.call, record.duplicate ?? false])).toEqual([
      ['backup', false],
      ['backup', true],
      ['backup', false],
      ['fetch', false],
    ]);
  });

  it('leaves out backupSharePairId (the documented body)', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('nopair');
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-omit-pair-id' });
    expect((await backup(simulator, client)).status).toBe(200);
    for (const request of deliveriesTo(webhook)) expect(Object.keys(JSON.parse(request.body) as object).sort()).toEqual(['backupMethod', 'clientId', 'share']);
  });

  it('acts as if the webhook refused, timed out or answered an error, sending nothing', async () => {
    const { webhook, simulator } = await selfManaged({ timeoutMs: 5_000 });
    const client = simulator.state.seedUser('injected');
    const cases: [Record<string, unknown>, Partial<WebhookCallRecord>][] = [
      [{ kind: 'webhook-refused' }, { error: 'ECONNREFUSED (injected)' }],
      [{ kind: 'webhook-timeout', latencyMs: 200 }, { error: 'timeout after 200 ms (injected)' }],
      [{ kind: 'webhook-status', status: 503 }, { status: 503, error: 'status 503 (injected)' }],
    ];
    for (const [rule, expected] of cases) {
      simulator.webhookDeliveries.length = 0;
      await planted(simulator, { route: 'webhookDelivery', count: 1, userId: 'injected', ...rule });
      await expectFailedWebhook(simulator, client, await backup(simulator, client));
      expect(await deliveries(simulator, 'injected')).toEqual([expect.objectContaining({ outcome: 'failed', ...expected })]);
    }
    expect(webhook.received).toEqual([]);
    expect(simulator.calls.webhookDelivery).toBeUndefined();
    // Fetch, too: the deliveries went through, the validation did not.
    await planted(simulator, { route: 'webhookFetch', kind: 'webhook-status', count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    expect(deliveriesTo(webhook)).toHaveLength(2);
    expect(fetchesTo(webhook)).toHaveLength(0);
  });

  it('ignores the answer of a delivery the webhook did store (lost response)', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('lost');
    await planted(simulator, { route: 'webhookDelivery', kind: 'webhook-lost-response', count: 1 });
    await expectFailedWebhook(simulator, client, await backup(simulator, client));
    expect(webhook.held.get(client.clientId)).toHaveLength(1);
    expect(await deliveries(simulator, 'lost')).toEqual([
      expect.objectContaining({ outcome: 'failed', status: 200, error: 'answer ignored (injected lost response)' }),
    ]);
  });
});

describe('Portal simulator: recovery in Self-Managed mode', () => {
  it('takes the custodian half from fetch, and fails when the webhook no longer has it', async () => {
    const { webhook, simulator } = await selfManaged();
    const client = simulator.state.seedUser('rec');
    const result = await backup(simulator, client);
    expect(result.status).toBe(200);
    await markCompleted(simulator, client, CURVES.map((curve) => result.body[curve]!.id));

    const recovered = await recover(simulator, client, result.body);
    expect(recovered.status).toBe(200);
    expect(Object.keys(recovered.body as object)).toEqual([...CURVES]);
    expect(fetchesTo(webhook)).toHaveLength(2);
    const recoverFetch = (await deliveries(simulator, 'rec')).at(-1)!;
    expect(recoverFetch).toMatchObject({ call: 'fetch', purpose: 'recover', outcome: 'ok', pairIds: CURVES.map((curve) => result.body[curve]!.id) });

    // The webhook lost the ED25519 share: Portal has no copy, so recovery fails.
    webhook.behaviour.fetchOmits = (share) => (JSON.parse(share) as { curve: string }).curve === 'ED25519';
    const lost = await recover(simulator, client, result.body);
    expect(lost.status).toBe(500);
    expect(lost.body).toEqual({ id: 'FAILED_WEBHOOK', message: 'Unable to fetch backup share from configured webhook' });

    // Back to Portal-Managed with no webhook: those pairs cannot be recovered either.
    await admin(simulator, '/admin/self-managed', { method: 'DELETE' });
    expect((await recover(simulator, client, result.body)).body).toMatchObject({ id: 'FAILED_WEBHOOK' });
  });

  it('does not consult fetch for pairs Portal kept (made in Portal-Managed mode)', async () => {
    const webhook = await standIn();
    const simulator = await start();
    const client = simulator.state.seedUser('mixed');
    const result = await backup(simulator, client);
    await markCompleted(simulator, client, CURVES.map((curve) => result.body[curve]!.id));
    simulator.setSelfManaged({ webhookUrl: webhook.url, webhookSecret: SECRET });
    expect((await recover(simulator, client, result.body)).status).toBe(200);
    expect(webhook.received).toEqual([]);
  });
});
