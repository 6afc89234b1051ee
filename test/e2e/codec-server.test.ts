import { execFile } from 'node:child_process';
import { operatorSigner } from '../support/operators';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { leaksIn, secretsOf } from '../../chaos/secret-scan';
import { createCodecServer } from '../../codec/codec-server';
import { EncryptionCodec } from '../../codec/encryption-codec';
import { toCodecKeyRing } from '../../config/codec-config';
import { toolBinary } from '../../stack/tool-binaries';
import { createBackupTestEnv, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

const UI = 'http://127.0.0.1:8233';
let env: BackupTestEnv;
let server: FastifyInstance;
let url: string;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
  server = createCodecServer({
    codec: new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })),
    allowedOrigins: [UI],
    tokens: ['operator-token-1', 'operator-token-0'],
    encode: true,
  });
  url = await server.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await server?.close();
  await env?.close();
});

/** Every payload in a raw history, as the UI sends them (proto3 JSON: base64 bytes). */
function payloadsOf(history: unknown): { metadata: Record<string, string>; data: string }[] {
  const found: { metadata: Record<string, string>; data: string }[] = [];
  const walk = (value: unknown) => {
    if (!value || typeof value !== 'object') return;
    const record = value as Record<string, unknown>;
    if (record.metadata && record.data instanceof Uint8Array) {
      const metadata = record.metadata as Record<string, Uint8Array>;
      found.push({
        metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        data: Buffer.from(record.data).toString('base64'),
      });
    } else for (const item of Object.values(record)) walk(item);
  };
  walk(history);
  return found;
}

const call = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: UI, authorization: 'Bearer operator-token-1', 'x-namespace': 'default', ...headers },
    body: JSON.stringify(body),
  });

describe('the codec server (Temporal’s codec-server protocol)', () => {
  it('decodes a real history’s payloads: the user id and pair ids are readable, shares stay sealed', async () => {
    const userId = env.seedUser('codec');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 503, count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    await env.backups.waitForBackup(userId);
    const history = await env.rawClient.workflow.getHandle(`backup-${userId}`).fetchHistory();
    const payloads = payloadsOf(history);
    expect(payloads.length).toBeGreaterThan(5);
    const response = await call('/decode', { payloads });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(UI);
    const decoded = (await response.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    const texts = decoded.payloads.map((p) => Buffer.from(p.data, 'base64').toString('utf8'));
    const encodings = decoded.payloads.map((p) => Buffer.from(p.metadata.encoding!, 'base64').toString());
    expect(encodings.every((encoding) => encoding !== 'binary/encrypted')).toBe(true);
    const pairIds = env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs.map((p) => p.id));
    expect(leaksIn(texts, [userId, ...pairIds, 'sealedShares']).length).toBe(pairIds.length + 2);
    expect(leaksIn(texts, secretsOf(env.simulator.state.user(userId)!))).toEqual([]);
    // The namespace in the path (the CLI's --codec-endpoint templating) works too; encode round-trips.
    const encoded = (await (await call('/default/encode', { payloads: decoded.payloads.slice(0, 1) })).json()) as typeof decoded;
    expect(Buffer.from(encoded.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    const again = (await (await call('/default/decode', encoded)).json()) as typeof decoded;
    expect(again.payloads[0]!.data).toBe(decoded.payloads[0]!.data);
  });

  it('decodes only unless told to encode: /encode is an oracle for payloads the workers accept', async () => {
    const decodeOnly = createCodecServer({
      codec: new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })),
      allowedOrigins: [UI],
      tokens: ['operator-token-1'],
    });
    const base = await decodeOnly.listen({ host: '127.0.0.1', port: 0 });
    try {
      const post = (path: string) =>
        fetch(`${base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer operator-token-1' },
          body: JSON.stringify({ payloads: [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"x"').toString('base64') }] }),
        });
      for (const path of ['/encode', '/default/encode']) {
        const refused = await post(path);
        expect(refused.status).toBe(403);
        expect(((await refused.json()) as { message: string }).message).toContain('decodes only');
      }
      expect((await post('/decode')).status).toBe(200);
    } finally {
      await decodeOnly.close();
    }
  });

  it('answers the browser’s preflight for the UI’s origin only, and asks for a token', async () => {
    const preflight = await fetch(`${url}/decode`, {
      method: 'OPTIONS',
      headers: { origin: UI, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('x-namespace');
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    expect((await call('/decode', { payloads: [] }, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await call('/decode', { payloads: [] }, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await call('/decode', { payloads: [] }, { authorization: 'Bearer operator-token-0' })).status).toBe(200);
    expect((await call('/decode', { nope: 1 })).status).toBe(400);
  });

  it('serves the Temporal CLI: `workflow query` (an empty {} body: no payloads) and `workflow show` decode through --codec-endpoint', async () => {
    const userId = env.seedUser('codec-cli');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId });
    await env.backups.startBackupWorkflow(userId);
    await waitUntilParked(env.backups, userId);
    const temporal = (...args: string[]) =>
      promisify(execFile)(toolBinary('temporal'), [
        ...args,
        '--address', inject('temporalAddress'),
        '--workflow-id', `backup-${userId}`,
        '--codec-endpoint', `${url}/{namespace}`,
        '--codec-auth', 'Bearer operator-token-1',
      ], { encoding: 'utf8', timeout: 60_000 });
    const query = await temporal('workflow', 'query', '--name', 'progress');
    expect(query.stdout).toContain('NEEDS_ATTENTION');
    const shown = await temporal('workflow', 'show', '--output', 'json');
    // The start input decodes (json/plain, the user id readable); without the codec it is binary/encrypted.
    const history = JSON.parse(shown.stdout) as { events: { workflowExecutionStartedEventAttributes?: { input: { payloads: { metadata: Record<string, string>; data: string }[] } } }[] };
    const [input] = history.events[0]!.workflowExecutionStartedEventAttributes!.input.payloads;
    expect(Buffer.from(input!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(input!.data, 'base64').toString())).toEqual({ userId });
    env.simulator.faults.clear();
    await env.backups.abandonBackup(userId, 'test over', operatorSigner('ops-mallory'));
  });
});
