import nodeVault from 'node-vault';

/**
 * A node-vault client for one Vault (or OpenBao). node-vault's debug logger prints request bodies
 * (plaintexts) when DEBUG matches: it is always silenced here.
 */
export function vaultClient(config: { endpoint: string; namespace?: string; timeoutMs: number }): nodeVault.client {
  return nodeVault({
    apiVersion: 'v1',
    endpoint: config.endpoint,
    ...(config.namespace ? { namespace: config.namespace } : {}),
    requestOptions: { timeout: config.timeoutMs },
    debug: () => undefined,
  } as nodeVault.VaultOptions);
}
