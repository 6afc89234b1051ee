import type { Pool } from 'pg';
import { VaultAuditSigner } from '../adapters/vault/audit-chain-signer';
import { vaultAuth } from '../adapters/vault/vault-connection';
import type { AuditEvent } from '../contracts/audit-events';
import type { AuditSigner, AuditVerification } from '../db/audit-chain';
import { verifyAuditTrail } from '../db/audit-seals';
import { AuditTrail, type AuditListFilter } from '../db/audit-trail';
import { createDatabasePool } from '../db/pool';
import type { AuditCliConfig } from './audit-config';
import { ClientError } from './client-error';

/** The audit trail failed verification; `verification` holds every problem, the first row first. */
export class AuditTrailTamperedError extends ClientError {
  override readonly name = 'AuditTrailTamperedError';
  readonly kind = 'tampered';

  constructor(readonly verification: AuditVerification) {
    const [first] = verification.problems;
    const more = verification.problems.length > 1 ? ` (and ${verification.problems.length - 1} more problem(s): see --json)` : '';
    super(`the audit trail failed verification: ${first?.message ?? 'unknown problem'}${more}. Keep a copy of audit_events and audit_seals as they are; do not repair them`);
  }
}

/** `audit list` given options that cannot work; the message says which. */
export class AuditArgumentError extends ClientError {
  override readonly name = 'AuditArgumentError';
  readonly kind = 'invalid';
}

/** The audit trail for an auditor: reads, and checks seals with the auditor's own Vault credentials. */
export class AuditClient {
  private readonly trail: AuditTrail;

  constructor(
    private readonly pool: Pool,
    private readonly signer: AuditSigner | undefined,
    private readonly maxUnsealedAgeMs: number,
  ) {
    this.trail = new AuditTrail(pool);
  }

  /** Walks the whole chain and checks the seals; throws AuditTrailTamperedError naming the first bad row. */
  async verify(): Promise<AuditVerification> {
    if (!this.signer) throw new AuditArgumentError('verify needs VAULT_ADDR and Vault credentials allowed to verify with the audit signing key');
    const verification = await verifyAuditTrail(this.trail, this.signer, { maxUnsealedAgeMs: this.maxUnsealedAgeMs });
    if (!verification.ok) throw new AuditTrailTamperedError(verification);
    return verification;
  }

  list(filter: AuditListFilter): Promise<AuditEvent[]> {
    return this.trail.list(filter);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** An AuditClient from configuration (DATABASE_URL; Vault for verify). Nothing is migrated: an auditor only reads. */
export function openAuditClient(config: AuditCliConfig): AuditClient {
  const pool = createDatabasePool(config.databaseUrl, { statementTimeoutMs: 60_000, applicationName: 'mpc-backup-audit' });
  const signer = config.signer ? new VaultAuditSigner(config.signer, vaultAuth(config.signer)) : undefined;
  return new AuditClient(pool, signer, config.maxUnsealedAgeMs);
}

/** `--since` as a time, or the error that says what to give. */
export function parseSince(since: string | undefined): Date | undefined {
  if (since === undefined) return undefined;
  const at = new Date(since);
  if (Number.isNaN(at.getTime())) throw new AuditArgumentError(`--since: "${since}" is not an ISO time (e.g. 2026-12-01T00:00:00Z)`);
  return at;
}
