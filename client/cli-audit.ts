import type { Command } from 'commander';
import { print } from './cli-output';
import { AuditArgumentError, AuditTrailTamperedError, openAuditClient, parseSince, type AuditClient } from './audit-client';
import { loadAuditCliConfig } from './audit-config';

async function withAudit(needsVault: boolean, action: (audit: AuditClient) => Promise<void>): Promise<void> {
  const audit = openAuditClient(loadAuditCliConfig(needsVault));
  try {
    await action(audit);
  } finally {
    await audit.close();
  }
}

/**
 * `backup audit verify|list`: the tamper-evident audit trail (audit_events, audit_seals) for an
 * auditor. Reads DATABASE_URL; `verify` also checks the seals with the caller's own Vault
 * credentials (update on transit/verify/<AUDIT_SIGNING_KEY>). Exit code 4 when the trail fails.
 */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail of releases, recoveries and operator actions (hash chain sealed with Vault)');
  audit
    .command('verify')
    .description('walk the whole chain and check its Vault seals; names the first row changed, inserted or removed (exit code 4)')
    .action(() =>
      withAudit(true, async (client) => {
        try {
          print(await client.verify());
        } catch (error) {
          // Every problem for the record (with --json, for scripts), then the typed error and its exit code.
          if (error instanceof AuditTrailTamperedError) print(error.verification);
          throw error;
        }
      }),
    );
  audit
    .command('list')
    .option('--user <userId>', "only this user's events")
    .option('--since <isoTime>', 'only events appended at or after this time')
    .option('--limit <n>', 'at most this many, oldest first', '1000')
    .description('list audit events, oldest first: kind, actor, user, subject, details')
    .action((options: { user?: string; since?: string; limit: string }) =>
      withAudit(false, async (client) => {
        const limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new AuditArgumentError('--limit must be a positive whole number');
        const since = parseSince(options.since);
        print(await client.list({ ...(options.user ? { userId: options.user } : {}), ...(since ? { since } : {}), limit }));
      }),
    );
}
