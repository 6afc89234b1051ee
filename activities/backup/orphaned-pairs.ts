import type { PortalClientInfo, PortalClient } from '../../adapters/portal/portal-client';

type Pair = { id: string; status: string; createdAt?: string | undefined };

/** Pairs still incomplete, created since `sinceMs` (or of unknown age), other than `exclude`. */
function incompleteSince(pairs: Pair[], sinceMs: number, exclude: Set<string>): string[] {
  return pairs
    .filter((pair) => pair.status.toLowerCase() === 'incomplete' && !exclude.has(pair.id))
    .filter((pair) => pair.createdAt === undefined || Date.parse(pair.createdAt) >= sinceMs)
    .map((pair) => pair.id);
}

/** Incomplete backup share pairs of the client created since `sinceMs`, other than `exclude`. */
export async function orphanedPairs(portal: Pick<PortalClient, 'getClient'>, clientApiKey: string, sinceMs: number, exclude: Set<string>): Promise<string[]> {
  const client = await portal.getClient(clientApiKey);
  return incompleteSince(client.wallets.flatMap((wallet) => wallet.backupSharePairs), sinceMs, exclude);
}

/** Incomplete signing share pairs (made by `/v1/recover` calls whose answers were lost) since `sinceMs`, other than `exclude`. */
export async function orphanedSigningPairs(portal: Pick<PortalClient, 'getClient'>, clientApiKey: string, sinceMs: number, exclude: Set<string>): Promise<string[]> {
  const client: PortalClientInfo = await portal.getClient(clientApiKey);
  return incompleteSince(client.wallets.flatMap((wallet) => wallet.signingSharePairs), sinceMs, exclude);
}
