import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { matchesAnySecret } from '../config/secret-check';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Browser origins allowed to call (the Temporal Web UI's), e.g. http://127.0.0.1:8233. */
  allowedOrigins: readonly string[];
  /**
   * Bearer tokens accepted in `Authorization` (several during a rotation). Empty: no token is asked
   * for, which is only sound on loopback (the dev stack): Temporal's UI sends its access token only
   * to an https codec endpoint.
   */
  tokens: readonly string[];
  /**
   * Serve `POST /encode` too. Off by default: it is an encryption oracle (whoever passes it makes
   * payloads the workers accept), needed only to send updates from the Web UI.
   */
  encode?: boolean;
  /** Namespaces served (`X-Namespace`, or the path segment); empty: any. */
  namespaces?: readonly string[];
  bodyLimitBytes?: number;
}

/**
 * Temporal's codec-server protocol: proto3 JSON, so every bytes field is base64, and an empty
 * repeated field is left out: `{}` (what the CLI sends for a query without arguments) is no payloads.
 */
const payloadsSchema = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()).nullish(), data: z.string().nullish() })).max(10_000).default([]),
}).strict();
type JsonPayload = z.infer<typeof payloadsSchema>['payloads'][number];

function fromJson(payload: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')])),
    data: Buffer.from(payload.data ?? '', 'base64'),
  };
}

function toJson(payload: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? []).toString('base64')])),
    data: Buffer.from(payload.data ?? []).toString('base64'),
  };
}

/**
 * The codec server for the Temporal Web UI and the `temporal` CLI (`--codec-endpoint`):
 * `POST /decode`, and `/encode` when configured (also under `/{namespace}/…`), CORS for the UI's origin with
 * `OPTIONS` preflight. It holds only the payload codec key, so it opens what clients can open and
 * nothing more: backup shares inside stay sealed to the workers.
 */
export function createCodecServer(options: CodecServerOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: options.bodyLimitBytes ?? 4 * 1024 * 1024 });

  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (origin !== undefined) {
      if (!options.allowedOrigins.includes(origin)) return reply.code(403).send({ message: `origin ${origin} is not allowed` });
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'Origin');
      reply.header('access-control-allow-credentials', 'true');
    }
    if (request.method === 'OPTIONS') {
      reply.header('access-control-allow-methods', 'POST, OPTIONS');
      reply.header('access-control-allow-headers', 'content-type, x-namespace, authorization');
      reply.header('access-control-max-age', '600');
      return reply.code(204).send();
    }
    if (options.tokens.length > 0) {
      const presented = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (!matchesAnySecret(presented, options.tokens)) return reply.code(401).send({ message: 'a valid bearer token is required' });
    }
  });

  const handle = (direction: 'encode' | 'decode') => async (request: FastifyRequest, reply: FastifyReply) => {
    const namespace = (request.params as { namespace?: string }).namespace ?? request.headers['x-namespace'];
    if (options.namespaces?.length && (typeof namespace !== 'string' || !options.namespaces.includes(namespace))) {
      return reply.code(403).send({ message: `namespace ${String(namespace)} is not served here` });
    }
    const parsed = payloadsSchema.safeParse(request.body ?? {});
    if (!parsed.success) return reply.code(400).send({ message: 'expected {"payloads": [{"metadata": {…base64}, "data": "base64"}]}' });
    const payloads = parsed.data.payloads.map(fromJson);
    if (direction === 'encode') return { payloads: (await options.codec.encode(payloads)).map(toJson) };
    // One payload this key cannot open (another key, another codec) is returned as it is, so the
    // rest of the page still decodes.
    const decoded = await Promise.all(payloads.map(async (payload) => (await options.codec.decode([payload]).catch(() => [payload]))[0]!));
    return { payloads: decoded.map(toJson) };
  };

  for (const prefix of ['', '/:namespace']) {
    app.post(`${prefix}/decode`, handle('decode'));
    app.post(
      `${prefix}/encode`,
      options.encode
        ? handle('encode')
        : async (_request, reply) => reply.code(403).send({ message: 'this codec server decodes only (CODEC_SERVER_ENCODE is not set)' }),
    );
    app.options(`${prefix}/decode`, async () => undefined);
    app.options(`${prefix}/encode`, async () => undefined);
  }
  app.get('/health', async () => ({ ok: true }));
  return app;
}
