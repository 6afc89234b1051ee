import { VaultPermissionError, VaultUnavailableError } from '../domain/errors';

/** Supplies the Vault token; `reauthenticate` is called once when Vault answers 403. */
export interface VaultAuth {
  token(): Promise<string>;
  reauthenticate(): Promise<string>;
}

/** A fixed token (dev servers, or a token an agent keeps fresh on disk/env). */
export class StaticTokenAuth implements VaultAuth {
  constructor(private readonly value: string) {}
  async token(): Promise<string> {
    return this.value;
  }
  async reauthenticate(): Promise<string> {
    return this.value;
  }
}

interface AppRoleLoginClient {
  approleLogin(args: { role_id: string; secret_id: string; mount_point?: string }): Promise<unknown>;
}

/** AppRole login; the token is fetched lazily and fetched again after a 403. */
export class AppRoleAuth implements VaultAuth {
  private current?: Promise<string>;

  constructor(
    private readonly client: AppRoleLoginClient,
    private readonly credentials: { roleId: string; secretId: string; mountPoint: string },
  ) {}

  token(): Promise<string> {
    this.current ??= this.login();
    return this.current;
  }

  reauthenticate(): Promise<string> {
    this.current = this.login();
    return this.current;
  }

  private async login(): Promise<string> {
    try {
      const result = (await this.client.approleLogin({
        role_id: this.credentials.roleId,
        secret_id: this.credentials.secretId,
        mount_point: this.credentials.mountPoint,
      })) as { auth?: { client_token?: unknown } };
      const token = result.auth?.client_token;
      if (typeof token !== 'string' || token.length === 0) {
        throw new VaultPermissionError('Vault AppRole login returned no client token');
      }
      return token;
    } catch (error) {
      this.current = undefined;
      const status = (error as { response?: { statusCode?: number } }).response?.statusCode;
      if (error instanceof VaultPermissionError) throw error;
      if (status === 400 || status === 403) {
        throw new VaultPermissionError(`Vault AppRole login was refused (${status}): check VAULT_ROLE_ID and VAULT_SECRET_ID`);
      }
      throw new VaultUnavailableError(`Vault AppRole login failed (${status ?? 'network error'}); will retry`);
    }
  }
}
