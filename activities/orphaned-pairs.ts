import type { PortalClient } from './portal-client';

/** Incomplete pairs of the client created since `sinceMs`, other than `exclude`. */
export async function orphanedPairs(portal: PortalClient, clientApiKey: string, sinceMs: number, exclude: Set<string>): Promise<string[]> {
  const client = await portal.getClient(clientApiKey);
  return client.wallets
    .flatMap((wallet) => wallet.backupSharePairs)
    .filter((pair) => pair.status.toLowerCase() === 'incomplete' && !exclude.has(pair.id))
    .filter((pair) => pair.createdAt === undefined || Date.parse(pair.createdAt) >= sinceMs)
    .map((pair) => pair.id);
}
