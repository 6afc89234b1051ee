import { nestedError } from './outcomes';
import type { SimulatorContext } from './simulator-context';

const WRITABLE_BACKUP_STATUSES = ['STORED_CLIENT_BACKUP_SHARE', 'STORED_CLIENT_BACKUP_SHARE_KEY'];

/** Portal's client API (shared/portal-api.md): the pairs' cipher texts and statuses, and the client object. */
export function registerClientRoutes(ctx: SimulatorContext): void {
  registerCipherTextRoutes(ctx);
  registerMarkRoutes(ctx);
  ctx.app.get(
    '/api/v3/clients/me',
    ctx.route('getClient', 'client', (_request, client) => ({
      status: 200,
      body: ctx.state.clientView(client!, { backupWithPortalEnabled: ctx.live.selfManaged === undefined }),
    })),
  );
}

/** A pair's client cipher text: stored (by POST or PATCH: the service's storeCipherTextMethod picks) and read back. */
function registerCipherTextRoutes({ app, state, route }: SimulatorContext): void {
  const storeCipherText = route('storeCipherText', 'client', (request, client) => {
    const { pairId } = request.params as { pairId: string };
    const pair = state.findPair(client!, pairId);
    if (!pair) return nestedError(404, 'NOT_FOUND', 'Backup share pair not found');
    const body = request.body as { clientCipherText?: unknown } | undefined;
    if (typeof body?.clientCipherText !== 'string' || body.clientCipherText.length === 0) {
      return nestedError(400, 'BAD_REQUEST', 'clientCipherText must be a non-empty string');
    }
    pair.clientCipherText = body.clientCipherText;
    pair.storeCount += 1;
    return { status: 200 };
  });
  app.post('/api/v3/clients/me/backup-share-pairs/:pairId', storeCipherText);
  app.patch('/api/v3/clients/me/backup-share-pairs/:pairId', storeCipherText);

  app.get(
    '/api/v3/clients/me/backup-share-pairs/:pairId/cipher-text',
    route('getCipherText', 'client', (request, client) => {
      const { pairId } = request.params as { pairId: string };
      const pair = state.findPair(client!, pairId);
      if (!pair?.clientCipherText) return nestedError(404, 'NOT_FOUND', 'No cipher text stored for this backup share pair');
      return { status: 200, body: { cipherText: pair.clientCipherText } };
    }),
  );
}

/** The statuses the client sets: backup pairs stored (once each unless `rejectRepeatedMarks` says otherwise), signing pairs kept. */
function registerMarkRoutes({ app, state, route, options }: SimulatorContext): void {
  app.patch(
    '/api/v3/clients/me/backup-share-pairs',
    route('markPairs', 'client', (request, client) => {
      const body = request.body as { status?: unknown; backupSharePairIds?: unknown } | undefined;
      if (typeof body?.status !== 'string' || !WRITABLE_BACKUP_STATUSES.includes(body.status)) {
        return nestedError(400, 'BAD_REQUEST', `status must be one of ${WRITABLE_BACKUP_STATUSES.join(', ')}`);
      }
      const ids = body.backupSharePairIds;
      if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === 'string')) {
        return nestedError(400, 'BAD_REQUEST', 'backupSharePairIds must be a non-empty array of ids');
      }
      const pairs = ids.map((id: string) => state.findPair(client!, id));
      if (pairs.some((pair) => !pair)) return nestedError(404, 'NOT_FOUND', 'Backup share pair not found');
      if (options.rejectRepeatedMarks && pairs.some((pair) => pair!.status === 'completed')) {
        return nestedError(400, 'BAD_REQUEST', 'Backup share pair is already completed');
      }
      for (const pair of pairs) {
        pair!.status = 'completed';
        pair!.markCount += 1;
      }
      client!.markEvents.push({ at: new Date().toISOString(), status: body.status, pairIds: ids as string[] });
      return { status: 204 };
    }),
  );

  app.patch(
    '/api/v3/clients/me/signing-share-pairs',
    route('markSigningPairs', 'client', (request, client) => {
      const body = request.body as { status?: unknown; signingSharePairIds?: unknown } | undefined;
      if (body?.status !== 'STORED_CLIENT') return nestedError(400, 'BAD_REQUEST', 'status must be STORED_CLIENT');
      const ids = Array.isArray(body.signingSharePairIds) ? body.signingSharePairIds : [];
      const pairs = client!.wallets.flatMap((wallet) => wallet.signingSharePairs).filter((pair) => ids.includes(pair.id));
      if (pairs.length === 0 || pairs.length !== ids.length) return nestedError(404, 'NOT_FOUND', 'Signing share pair not found');
      for (const pair of pairs) pair.status = 'completed';
      return { status: 204 };
    }),
  );
}
