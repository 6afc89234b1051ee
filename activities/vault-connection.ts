import nodeVault from 'node-vault';
import type { VaultConfig } from '../config/vault-config';
import { AppRoleAuth, StaticTokenAuth, type VaultAuth } from './vault-auth';
import { VaultTransit } from './vault-transit';

/** Vault Transit from configuration: a static token, or AppRole with renewal and re-login. */
export function connectVaultTransit(config: VaultConfig): VaultTransit {
  const auth: VaultAuth =
    config.auth.kind === 'token'
      ? new StaticTokenAuth(config.auth.token)
      : new AppRoleAuth(
          nodeVault({
            endpoint: config.endpoint,
            ...(config.namespace ? { namespace: config.namespace } : {}),
            requestOptions: { timeout: config.timeoutMs },
            // node-vault's debug logger prints request bodies when DEBUG matches: silence it.
            debug: () => undefined,
          } as nodeVault.VaultOptions),
          config.auth,
        );
  return new VaultTransit(config, auth);
}
