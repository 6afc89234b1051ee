import type { FastifyRequest } from 'fastify';
import { CURVES } from '../domain/curves';
import { flatError } from './outcomes';
import type { SimBackupPair } from './portal-state';
import { custodianSharesForRecovery, deliverCustodianShares } from './self-managed-flow';
import type { SimulatorContext } from './simulator-context';

/** Portal's Enclave MPC API (shared/portal-api.md): `/v1/backup` and `/v1/recover`. */
export function registerEnclaveRoutes(ctx: SimulatorContext): void {
  const { app, state, route } = ctx;
  app.post(
    '/v1/backup',
    route('backup', 'client', async (request, client) => {
      const generateResponse = stringField(request, 'generateResponse');
      if (generateResponse === undefined) {
        return flatError(400, 'BAD_REQUEST', 'generateResponse must be the /v1/generate response as a JSON string');
      }
      if (!sameSigningShares(generateResponse, state.currentSigningShares(client!))) {
        return flatError(400, 'BAD_REQUEST', "generateResponse does not hold this client's signing shares");
      }
      // The mode when the call arrived holds for the whole call, even if it is switched meanwhile.
      const settings = ctx.live.selfManaged;
      const response = state.createBackupPairs(client!, settings ? { selfManaged: true, backupMethod: settings.backupMethod } : {});
      if (!settings) return { status: 200, body: response };
      return deliverCustodianShares(ctx, settings, client!, response);
    }),
  );

  app.post(
    '/v1/recover',
    route('recover', 'client', async (request, client) => {
      const backupResponse = stringField(request, 'backupResponse');
      if (backupResponse === undefined) {
        return flatError(400, 'BAD_REQUEST', 'backupResponse must be the /v1/backup response as a JSON string');
      }
      let parsed: Record<string, { id?: unknown; share?: unknown }>;
      try {
        parsed = JSON.parse(backupResponse) as typeof parsed;
      } catch {
        return flatError(400, 'BAD_REQUEST', 'backupResponse is not valid JSON');
      }
      const pairs: SimBackupPair[] = [];
      for (const curve of CURVES) {
        const entry = parsed[curve];
        const pair = typeof entry?.id === 'string' ? state.findPair(client!, entry.id) : undefined;
        if (!pair || pair.curve !== curve || pair.share !== entry?.share) return flatError(400, 'BAD_REQUEST', `no backup share for ${curve} matches`);
        if (pair.status !== 'completed') return flatError(400, 'BAD_REQUEST', 'recover cannot run until backup succeeds');
        pairs.push(pair);
      }
      const custodianFailure = await custodianSharesForRecovery(ctx, client!, pairs);
      if (custodianFailure) return custodianFailure;
      return { status: 200, body: state.createSigningShares(client!) };
    }),
  );
}

/** The body's `field` when it is a string: the Enclave API takes the documents it is given back as JSON strings. */
function stringField(request: FastifyRequest, field: string): string | undefined {
  const value = (request.body as Record<string, unknown> | null | undefined)?.[field];
  return typeof value === 'string' ? value : undefined;
}

/** Whether `sent` (a /v1/generate or /v1/recover response, as a JSON string) holds the client's current signing shares. */
function sameSigningShares(sent: string, current: Record<string, { id: string; share: string }> | undefined): boolean {
  if (!current) return false;
  try {
    const a = JSON.parse(sent) as Record<string, { id?: unknown; share?: unknown }>;
    return CURVES.every((curve) => a[curve]?.id === current[curve]?.id && a[curve]?.share === current[curve]?.share);
  } catch {
    return false;
  }
}
