import { KmsPermissionError, VaultAccessDeniedError, VaultPermissionError } from '../../domain/errors';
import { transitContext } from '../kms/transit-context';
import type { KmsProvider } from '../kms/kms-provider';

/** What the probe encrypts: no user's data, under a context no user id can take (ids start with a letter or digit). */
const PROBE = { plaintext: Buffer.from('mpc-backup access probe', 'utf8'), context: transitContext('~access-probe', '~probe') };

/**
 * Vault refusing the workers' token (an expired token, a policy deploy gone wrong) is a condition
 * of the whole service, not of one backup. Step 1 asks this check before it asks Portal for
 * anything, so while Vault refuses, backups wait at step 1 (retrying, see step-timeouts) and make
 * no pairs at Portal that would each park at ENCRYPT and need their own retry. The verdict is
 * shown once, as a gauge (mpc_backup_vault_access_denied, alert MpcBackupVaultAccessDenied), not
 * per user. A good verdict is kept for `okForMs`; a refusal is checked again on every call, so
 * backups go on as soon as the token or policy is fixed.
 */
export class VaultAccessCheck {
  private okUntil = 0;

  constructor(
    private readonly transit: Pick<KmsProvider, 'encryptBatch'>,
    private readonly okForMs: number,
    private readonly report: (denied: boolean) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Resolves unless Vault refuses this worker's token: then VaultAccessDeniedError (retryable).
   * Vault being down or slow is not this check's business: step 1 goes on, and ENCRYPT waits for
   * Vault as it always did (its pairs then complete once Vault is back).
   */
  async assertUsable(): Promise<void> {
    if (this.now() < this.okUntil) return;
    try {
      await this.transit.encryptBatch([PROBE]);
    } catch (error) {
      if (!(error instanceof VaultPermissionError) && !(error instanceof KmsPermissionError)) return;
      this.report(true);
      throw new VaultAccessDeniedError(
        `Vault refuses this worker's token for Transit encryption (403): ${error.message}. Every backup waits at step 1 and asks Portal for nothing ` +
          'until the token or its policy is fixed (see the MpcBackupVaultAccessDenied alert); no retry per backup is needed',
      );
    }
    this.report(false);
    this.okUntil = this.now() + this.okForMs;
  }
}
