import type { Command } from 'commander';
import { createCiphertextStores } from '../adapters/stores/ciphertext-store-factory';
import { HttpCredentialsSource } from '../adapters/credentials/credentials-source';
import { PortalClient } from '../adapters/portal/portal-client';
import { connectKmsAsCaller } from '../adapters/kms/kms-caller';
import { AuditTrail } from '../db/audit-trail';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { httpUserPages } from './cli-coverage';
import { loadCopyRepairConfig, type CopyRepairConfig } from './copy-repair-config';
import { CopyRepairOptionsError, repairCopies, type CopyRepairDeps, type CopyRepairRow, type CopyRepairSummary } from './copy-repair';
import { readUserListFile } from './user-list-file';

/** Where repair's users come from: one user, or --all with a source. */
interface RepairOptions {
  all?: boolean;
  sourceUrl?: string;
  usersFile?: string;
  pageSize: string;
  usersPerMinute: string;
}

/** The options' problems, all at once; the pace and page size once they pass. */
function checkOptions(userId: string | undefined, options: RepairOptions): { usersPerMinute: number; pageSize: number } {
  const problems: string[] = [];
  if ((userId !== undefined) === (options.all === true)) problems.push('give a <userId> or --all, not both');
  if (options.all && [options.sourceUrl, options.usersFile].filter((value) => value !== undefined).length !== 1) {
    problems.push('--all needs exactly one of --source-url (the backend’s paged user list) or --users-file');
  }
  if (!options.all && (options.sourceUrl || options.usersFile)) problems.push('--source-url and --users-file go with --all');
  const usersPerMinute = Number(options.usersPerMinute);
  if (!(Number.isInteger(usersPerMinute) && usersPerMinute >= 1 && usersPerMinute <= 6_000)) problems.push('--users-per-minute must be a whole number from 1 to 6000');
  const pageSize = Number(options.pageSize);
  if (!(Number.isInteger(pageSize) && pageSize >= 1 && pageSize <= 10_000)) problems.push('--page-size must be a whole number from 1 to 10000');
  if (problems.length > 0) throw new CopyRepairOptionsError(problems.join('; '));
  return { usersPerMinute, pageSize };
}

/** Repair's dependencies from its configuration (the stores, the caller's KMS, the audit database); `close` ends the pool. */
export async function openCopyRepair(config: CopyRepairConfig = loadCopyRepairConfig()): Promise<{ deps: CopyRepairDeps; credentialsHeader?: { name: string; value: string }; close(): Promise<void> }> {
  const pool = createDatabasePool(config.databaseUrl);
  try {
    await migrate(pool);
    const portal = new PortalClient(config.portal);
    const credentials = new HttpCredentialsSource(config.credentials);
    const { transit, identity } = connectKmsAsCaller(config.kms);
    const stores = createCiphertextStores(config.stores, { portal, credentials, database: pool });
    const actor = (await identity.whoAmI()).displayName;
    return {
      deps: { credentials, portal, stores, transit, auditTrail: new AuditTrail(pool), actor },
      ...(config.credentials.authHeader ? { credentialsHeader: config.credentials.authHeader } : {}),
      close: () => pool.end(),
    };
  } catch (error) {
    await pool.end();
    throw error;
  }
}

/**
 * `backup copies repair <userId|--all>`: re-creates missing copies (CIPHERTEXT_STORES) from one
 * that verifies; one JSON line per user, a summary last. Its configuration: client/copy-repair-config.ts
 * (KMS credentials that may decrypt-verify the source: a platform job's, not a person's; DATABASE_URL
 * keeps the audit trail).
 */
export function registerCopiesCommands(program: Command): void {
  const copies = program.command('copies').description('the copies of each backup in the stores of CIPHERTEXT_STORES');
  copies
    .command('repair')
    .argument('[userId]')
    .option('--all', 'every user of --source-url or --users-file')
    .option('--source-url <url>', "with --all: the backend's paged user list (GET url?limit=&cursor= → {userIds, nextCursor})")
    .option('--users-file <file>', 'with --all: user ids, one per line (or CSV / JSON Lines)')
    .option('--page-size <n>', 'users per page of --source-url', '500')
    .option('--users-per-minute <n>', 'pace: users repaired per minute (each costs a Portal read, a read per store and copy, a decryption)', '120')
    .description("re-create each missing copy of the newest completed backup from a copy that verifies (write-once, read back, audited as copy.repaired)")
    .action(async (userId: string | undefined, options: RepairOptions) => {
      const { usersPerMinute, pageSize } = checkOptions(userId, options);
      const repair = await openCopyRepair();
      try {
        const users: AsyncIterable<string[]> = options.sourceUrl
          ? httpUserPages(options.sourceUrl, pageSize, repair.credentialsHeader)
          : (async function* () {
              yield userId !== undefined ? [userId] : readUserListFile(options.usersFile!);
            })();
        const summary: CopyRepairSummary = await repairCopies(repair.deps, users, { usersPerMinute }, (row: CopyRepairRow) => {
          process.stdout.write(`${JSON.stringify(row)}\n`);
        });
        process.stdout.write(`${JSON.stringify({ summary })}\n`);
        if (summary.failed > 0) process.exitCode = 2;
      } finally {
        await repair.close();
      }
    });
}
