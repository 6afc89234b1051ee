import { CURVES } from '../domain/curves';
import type { SimulatorContext } from './simulator-context';

/**
 * The company's backend, simulated for local dev and tests: the credentials source, the signing
 * shares a recovery hands back, and the paged user list (the batch's HTTP source).
 */
export function registerBackendRoutes(ctx: SimulatorContext): void {
  const { app, state, route } = ctx;
  app.get(
    '/backend/users/:userId/credentials',
    route('credentials', 'backend', (request) => {
      const client = state.user((request.params as { userId: string }).userId);
      if (!client) return { status: 404, body: { message: 'unknown user' } };
      return { status: 200, body: { clientApiKey: client.apiKey, generateResponse: client.generateResponse } };
    }),
  );

  // The backend's side of a recovery: it keeps the new signing shares (the /v1/recover response),
  // which its credentials route then hands out. Idempotent: the same shares again change nothing.
  app.put(
    '/backend/users/:userId/signing-shares',
    route('signingShares', 'backend', (request) => {
      const client = state.user((request.params as { userId: string }).userId);
      if (!client) return { status: 404, body: { message: 'unknown user' } };
      const body = request.body as { signingShares?: unknown } | undefined;
      if (typeof body?.signingShares !== 'string' || !isSigningShares(body.signingShares)) {
        return { status: 400, body: { message: 'signingShares must be the /v1/recover response as a JSON string' } };
      }
      client.generateResponse = body.signingShares;
      return { status: 204 };
    }),
  );

  // The company backend's paged user list (the batch's HTTP source), over the seeded users.
  app.get(
    '/backend/users',
    route('listUsers', 'backend', (request) => {
      const query = request.query as { cursor?: string; limit?: string };
      const limit = Math.min(Math.max(Number(query.limit ?? 100) || 100, 1), 1000);
      const all = state.users();
      const start = query.cursor ? Number(Buffer.from(query.cursor, 'base64url').toString()) : 0;
      if (!Number.isInteger(start) || start < 0) return { status: 400, body: { message: 'bad cursor' } };
      const page = all.slice(start, start + limit).map((client) => client.userId);
      const next = start + page.length;
      return {
        status: 200,
        body: { userIds: page, nextCursor: next < all.length ? Buffer.from(String(next)).toString('base64url') : null },
      };
    }),
  );
}

function isSigningShares(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as Record<string, { id?: unknown; share?: unknown }>;
    return CURVES.every((curve) => typeof parsed[curve]?.id === 'string' && typeof parsed[curve]?.share === 'string');
  } catch {
    return false;
  }
}
