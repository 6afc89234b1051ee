import { VaultPermissionError, VaultUnavailableError } from '../../domain/errors';

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

interface AppRoleClient {
  token?: string;
  approleLogin(args: { role_id: string; secret_id: string; mount_point?: string }): Promise<unknown>;
  tokenRenewSelf(args?: object): Promise<unknown>;
}

interface Lease {
  token: string;
  obtainedAt: number;
  ttlMs: number;
  renewable: boolean;
}

/** Below this remaining TTL a renewal is not worth it: log in again instead. */
const MIN_USEFUL_TTL_MS = 2_000;

/**
 * AppRole login with token renewal: a token past two thirds of its TTL is renewed (renew-self)
 * before use, and replaced by a fresh login when it is not renewable, the renewal fails, or its
 * max TTL leaves too little. A 403 (revoked or expired anyway) logs in again once.
 */
export class AppRoleAuth implements VaultAuth {
  private lease?: Promise<Lease>;
  /** Counters for tests and metrics. */
  readonly stats = { logins: 0, renewals: 0 };

  constructor(
    private readonly client: AppRoleClient,
    private readonly credentials: { roleId: string; secretId: string; mountPoint: string },
    private readonly now: () => number = Date.now,
  ) {}

  async token(): Promise<string> {
    this.lease ??= this.login();
    let lease: Lease;
    try {
      lease = await this.lease;
    } catch (error) {
      this.lease = undefined;
      throw error;
    }
    if (lease.ttlMs > 0 && this.now() - lease.obtainedAt >= (lease.ttlMs * 2) / 3) {
      this.lease = this.refresh(lease);
      lease = await this.lease.catch((error: unknown) => {
        this.lease = undefined;
        throw error;
      });
    }
    return lease.token;
  }

  async reauthenticate(): Promise<string> {
    this.lease = this.login();
    return (await this.lease).token;
  }

  private async refresh(lease: Lease): Promise<Lease> {
    if (lease.renewable) {
      try {
        this.client.token = lease.token;
        const renewed = (await this.client.tokenRenewSelf({})) as { auth?: { lease_duration?: number } };
        const ttlMs = (renewed.auth?.lease_duration ?? 0) * 1000;
        this.stats.renewals += 1;
        if (ttlMs >= MIN_USEFUL_TTL_MS) return { ...lease, obtainedAt: this.now(), ttlMs };
      } catch {
        // Not renewable any more (max TTL reached, revoked): fall through to a fresh login.
      }
    }
    return this.login();
  }

  private async login(): Promise<Lease> {
    try {
      this.client.token = undefined;
      const result = (await this.client.approleLogin({
        role_id: this.credentials.roleId,
        secret_id: this.credentials.secretId,
        mount_point: this.credentials.mountPoint,
      })) as { auth?: { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } };
      const token = result.auth?.client_token;
      if (typeof token !== 'string' || token.length === 0) {
        throw new VaultPermissionError('Vault AppRole login returned no client token');
      }
      this.stats.logins += 1;
      const ttl = typeof result.auth?.lease_duration === 'number' ? result.auth.lease_duration : 0;
      return { token, obtainedAt: this.now(), ttlMs: ttl * 1000, renewable: result.auth?.renewable === true };
    } catch (error) {
      if (error instanceof VaultPermissionError) throw error;
      const status = (error as { response?: { statusCode?: number } }).response?.statusCode;
      if (status === 400 || status === 403) {
        throw new VaultPermissionError(`Vault AppRole login was refused (${status}): check VAULT_ROLE_ID and VAULT_SECRET_ID`);
      }
      throw new VaultUnavailableError(`Vault AppRole login failed (${status ?? 'network error'}); will retry`);
    }
  }
}
