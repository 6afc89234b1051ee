import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A company endpoint in the shape of Portal's example backend, for tests of the http ciphertext
 * store: one record per user, `POST /users/:userId/user-backup-share` with
 * `{data: {secp256k1Ciphertext, ed25519Ciphertext}}` (extra fields kept), read back with `GET` on
 * the same path.
 */
export interface CompanyCiphertextEndpoint {
  /** The URL template for CIPHERTEXT_HTTP_WRITE_URL / _READ_URL. */
  template: string;
  records: Map<string, unknown>;
  /** POSTs received. */
  posts(): number;
  /** The Authorization header of the last request. */
  lastAuth(): string | undefined;
  /** Answer the next request with this status instead of handling it. */
  failNext(status: number): void;
  /** Down (true): answer every request 503 until up again (false). */
  setDown(down: boolean): void;
  /** Requests answered 503 while down. */
  refusedWhileDown(): number;
  reset(): void;
  close(): Promise<void>;
}

async function body(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export async function startCompanyCiphertextEndpoint(): Promise<CompanyCiphertextEndpoint> {
  const records = new Map<string, unknown>();
  let posts = 0;
  let failing: number | undefined;
  let down = false;
  let refused = 0;
  let auth: string | undefined;
  const server = createServer((request, response) => {
    void (async () => {
      auth = request.headers.authorization;
      const url = new URL(request.url ?? '/', 'http://endpoint');
      // One record per user (Portal's example backend), or per pair when the URL names one.
      const userId = decodeURIComponent(/^\/users\/([^/]+)\/user-backup-share$/.exec(url.pathname)?.[1] ?? '');
      const key = url.searchParams.get('pair') ? `${userId}/${url.searchParams.get('pair')}` : userId;
      if (down) {
        refused += 1;
        response.statusCode = 503;
        return response.end('{"message":"down"}');
      }
      if (failing) {
        response.statusCode = failing;
        failing = undefined;
        return response.end('{"message":"no"}');
      }
      if (request.method === 'POST') {
        posts += 1;
        records.set(key, await body(request));
        response.statusCode = 201;
        return response.end();
      }
      const record = records.get(key);
      response.statusCode = record ? 200 : 404;
      response.setHeader('content-type', 'application/json');
      response.end(record ? JSON.stringify(record) : '{"message":"not found"}');
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    template: `${base}/users/{userId}/user-backup-share`,
    records,
    posts: () => posts,
    lastAuth: () => auth,
    failNext: (status) => (failing = status),
    setDown: (value) => (down = value),
    refusedWhileDown: () => refused,
    reset() {
      records.clear();
      posts = 0;
      failing = undefined;
      down = false;
      refused = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
