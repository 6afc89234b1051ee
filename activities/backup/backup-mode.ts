import { BackupModeMismatchError } from '../../domain/errors';
import type { PortalClient } from '../../adapters/portal/portal-client';

/** Portal-Managed: Portal keeps the custodian halves. Self-Managed: Portal delivers them to our webhook. */
export type BackupMode = 'portal-managed' | 'self-managed';

/**
 * Checks the configured mode against Portal's environment switch (`backupWithPortalEnabled` in the
 * client object) before step 1 makes anything. The switch is environment-wide, so one answer is
 * remembered for `ttlMs`; a mismatch is never remembered (it fails every backup until fixed).
 */
export class BackupModeCheck {
  private confirmedAt?: number;

  constructor(
    readonly mode: BackupMode,
    private readonly portal: PortalClient,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async verify(clientApiKey: string): Promise<void> {
    if (this.confirmedAt !== undefined && this.now() - this.confirmedAt < this.ttlMs) return;
    const client = await this.portal.getClient(clientApiKey);
    const portalManaged = client.environment?.backupWithPortalEnabled;
    // Portal documents the field as optional: when it is absent there is nothing to check against.
    if (portalManaged !== undefined && portalManaged !== (this.mode === 'portal-managed')) {
      const portalMode: BackupMode = portalManaged ? 'portal-managed' : 'self-managed';
      throw new BackupModeMismatchError(
        `this service runs in ${this.mode} mode (BACKUP_MODE) but Portal's environment is ${portalMode} ` +
          `(backupWithPortalEnabled=${portalManaged}): set BACKUP_MODE=${portalMode} on the workers, or change the environment with Portal; nothing was created`,
      );
    }
    this.confirmedAt = this.now();
  }
}
