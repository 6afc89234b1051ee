import nodeVault from 'node-vault';
import type { VaultConfig } from '../config/vault-config';
import type { CallMetrics } from '../metrics/service-metrics';
import { AppRoleAuth, StaticTokenAuth, type VaultAuth } from './vault-auth';
import { VaultIdentity } from './vault-identity';
import { VaultTransit } from './vault-transit';

/** A node-vault client for the configured Vault (request bodies never logged). */
export function vaultClient(config: VaultConfig): nodeVault.client {
  return nodeVault({
    apiVersion: 'v1',
    endpoint: config.endpoint,
    ...(config.namespace ? { namespace: config.namespace } : {}),
    requestOptions: { timeout: config.timeoutMs },
    // node-vault's debug logger prints request bodies when DEBUG matches: silence it.
    debug: () => undefined,
  } as nodeVault.VaultOptions);
}

/** The configured authentication: a static token, or AppRole with renewal and re-login. */
export function vaultAuth(config: VaultConfig): VaultAuth {
  return config.auth.kind === 'token' ? new StaticTokenAuth(config.auth.token) : new AppRoleAuth(vaultClient(config), config.auth);
}

/** Vault Transit from configuration (with the worker's Vault call metrics, when given). */
export function connectVaultTransit(config: VaultConfig, auth: VaultAuth = vaultAuth(config), metrics?: CallMetrics): VaultTransit {
  return new VaultTransit(config, auth, undefined, metrics);
}

/** Transit plus who the credentials belong to, on one authentication (eject retrieval needs both). */
export function connectVaultAsCaller(config: VaultConfig): { transit: VaultTransit; identity: VaultIdentity } {
  const auth = vaultAuth(config);
  return { transit: connectVaultTransit(config, auth), identity: new VaultIdentity(vaultClient(config), auth) };
}
