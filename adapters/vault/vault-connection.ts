import type { VaultConfig } from '../../config/vault-config';
import type { CallMetrics } from '../../metrics/service-metrics';
import { AppRoleAuth, StaticTokenAuth, type VaultAuth } from './vault-auth';
import { vaultClient } from './vault-client';
import { VaultIdentity } from './vault-identity';
import { VaultTransit } from './vault-transit';

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
