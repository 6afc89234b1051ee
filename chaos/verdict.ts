import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import { VaultTransit } from '../adapters/vault/vault-transit';
import { AwsKmsEnvelope } from '../adapters/kms/aws-kms-envelope';
import type { KmsProvider } from '../adapters/kms/kms-provider';
import { parseDatabaseUrl } from '../db/database-url';
import { createDatabasePool } from '../db/pool';
import { backupWorkflowId } from '../domain/user-id';
import type { WebhookCallRecord } from '../simulator/custodian-webhook';
import type { PortalSimulator } from '../simulator/portal-simulator';
import type { PostgresServer } from '../stack/postgres-server';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, localKmsClient } from '../stack/local-kms-server';
import type { BackupDriver } from './backup-driver';
import type { CampaignContext } from './campaign-context';
import type { CampaignStack } from './campaign-stack';
import type { CampaignUsers } from './fault-schedule';
import { campaignStores } from './campaign-options';
import {
  candidateTokens,
  checkCustodianShares,
  checkCopiesRotated,
  checkEveryCopy,
  type CopyLookup,
  checkRecovery,
  checkUser,
  ciphertextAtPortal,
  ViolationLog,
  type CiphertextLookup,
  type HeldCustodianShare,
} from './invariants';
import { checkCoverage, type CoverageAccount } from './coverage-check';
import { resilient } from './resilient';
import { leaksIn, secretsOf, textsIn } from './secret-scan';

/** What the checks found: the violations, and the counts the report gives beside them. */
export interface Verdict {
  violations: ViolationLog;
  orphans: number;
  runCount: number;
  usersRunAgain: number;
  acknowledgedShares: number;
  custodianRowCount: number;
  clientCiphertextRows: number;
  /** `backup coverage` over the campaign's users, held against the campaign's account. */
  coverage: CoverageAccount;
}

/** Self-managed: the company's tables, read once (client ciphertexts by user, custodian shares by client). */
interface CompanyTables {
  clientCiphertexts: Map<string, Map<string, string>>;
  custodianRows: Map<string, HeldCustodianShare[]>;
  clientCiphertextRows: number;
}

/** Every invariant over what the run left: each user's backups, the rotation, the recoveries and the logs. */
export async function checkInvariants(ctx: CampaignContext, stack: CampaignStack, users: CampaignUsers, driver: BackupDriver): Promise<Verdict> {
  const violations = new ViolationLog();
  const transit = kmsForChecks(stack);
  // Portal's calls to the webhook so far, before the tables are read: a share acknowledged in
  // these was committed before the read. (Time ran out: the workers were stopped first, so no
  // pair is marked after the read either.)
  const deliveries = deliveriesByUser(stack.simulator);
  const tables = stack.postgres ? await readCompanyTables(stack.postgres) : { clientCiphertexts: new Map(), custodianRows: new Map(), clientCiphertextRows: 0 };
  const counts = await checkBackups(ctx, stack, users, driver, { transit, deliveries, tables, violations });
  checkRotation(driver, violations);
  await checkRecoveries(stack, driver, violations);
  scanLogs(ctx, stack, users, violations);
  const coverage = await checkCoverage(stack, users.userIds.slice(0, driver.next), driver, violations);
  return {
    violations,
    ...counts,
    coverage,
    custodianRowCount: [...tables.custodianRows.values()].reduce((sum, rows) => sum + rows.length, 0),
    clientCiphertextRows: tables.clientCiphertextRows,
  };
}

/** The KMS in use, reached directly (not through the fault proxy), with the root token for Vault. */
function kmsForChecks(stack: CampaignStack): KmsProvider {
  const { aws } = stack.kms;
  const { vault } = stack;
  return aws
    ? new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint: aws.endpoint, keyAlias: 'alias/mpc-backup', timeoutMs: 10_000 }, undefined, localKmsClient(aws.endpoint))
    : new VaultTransit(
        { endpoint: vault.addr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 10_000 },
        new StaticTokenAuth(vault.rootToken),
        nodeVault({ endpoint: vault.addr, debug: () => undefined } as nodeVault.VaultOptions),
      );
}

function deliveriesByUser(simulator: PortalSimulator): Map<string, WebhookCallRecord[]> {
  const byUser = new Map<string, WebhookCallRecord[]>();
  for (const call of simulator.webhookDeliveries) {
    const list = byUser.get(call.userId) ?? [];
    list.push(call);
    byUser.set(call.userId, list);
  }
  return byUser;
}

async function readCompanyTables(postgres: PostgresServer): Promise<CompanyTables> {
  const clientCiphertexts = new Map<string, Map<string, string>>();
  const custodianRows = new Map<string, HeldCustodianShare[]>();
  const pool = createDatabasePool(postgres.url, { statementTimeoutMs: 60_000 });
  try {
    const ciphertexts = await pool.query<{ user_id: string; pair_id: string; ciphertext: string }>('SELECT user_id, pair_id, ciphertext FROM client_ciphertexts');
    for (const row of ciphertexts.rows) {
      if (!clientCiphertexts.has(row.user_id)) clientCiphertexts.set(row.user_id, new Map());
      clientCiphertexts.get(row.user_id)!.set(row.pair_id, row.ciphertext);
    }
    const shares = await pool.query<{ client_id: string; backup_method: string; pair_id: string; encrypted_share: string; share_sha256: string }>(
      'SELECT client_id, backup_method, pair_id, encrypted_share, share_sha256 FROM custodian_shares',
    );
    for (const row of shares.rows) {
      const list = custodianRows.get(row.client_id) ?? [];
      list.push({ backupMethod: row.backup_method, pairId: row.pair_id, encryptedShare: row.encrypted_share, shareSha256: row.share_sha256 });
      custodianRows.set(row.client_id, list);
    }
    return { clientCiphertexts, custodianRows, clientCiphertextRows: ciphertexts.rows.length };
  } finally {
    await pool.end();
  }
}

/** Each started user: its runs and pairs, (self-managed) its custodian shares, and its histories free of secrets. */
async function checkBackups(
  ctx: CampaignContext,
  stack: CampaignStack,
  users: CampaignUsers,
  driver: BackupDriver,
  seen: { transit: KmsProvider; deliveries: Map<string, WebhookCallRecord[]>; tables: CompanyTables; violations: ViolationLog },
): Promise<Pick<Verdict, 'orphans' | 'runCount' | 'usersRunAgain' | 'acknowledgedShares'>> {
  const { transit, deliveries, tables, violations } = seen;
  const counts = { orphans: 0, runCount: 0, usersRunAgain: 0, acknowledgedShares: 0 };
  for (const userId of users.userIds.slice(0, driver.next)) {
    const simClient = stack.simulator.state.user(userId)!;
    const copies: CopyLookup[] = campaignStores(ctx.options).map((store) => ({
      store,
      ciphertextOf: store === 'postgres' ? (pair) => tables.clientCiphertexts.get(userId)?.get(pair.id) : ciphertextAtPortal,
    }));
    // A pair's ciphertext for the invariants of one backup: any copy's (each copy is checked below).
    const ciphertextOf: CiphertextLookup = (pair) => copies.map((copy) => copy.ciphertextOf(pair)).find((ciphertext) => ciphertext !== undefined);
    const outcome = driver.outcomes.get(userId);
    if (outcome) {
      const checked = await checkUser(simClient, outcome, transit, violations, ciphertextOf);
      counts.orphans += checked.orphans;
      counts.runCount += checked.runs;
      if (checked.runs > 1) counts.usersRunAgain += 1;
    }
    if (copies.length > 1) await checkEveryCopy(simClient, transit, violations, copies);
    // The rotation's raise: every copy of every marked pair on the raised version (one string per pair).
    const raised = driver.rotationReport?.minDecryptionVersion;
    if (raised?.raised && raised.minDecryptionVersion !== undefined) checkCopiesRotated(simClient, copies, raised.minDecryptionVersion, violations);
    // Whether the backup ended or not: a share acknowledged to Portal must be held.
    if (ctx.options.mode === 'self-managed') {
      const held = tables.custodianRows.get(simClient.clientId) ?? [];
      counts.acknowledgedShares += (await checkCustodianShares(simClient, deliveries.get(userId) ?? [], held, transit, violations)).acknowledged;
    }
    // Every run's history (the latest run's only, for a backup that did not end in time).
    for (const runId of outcome ? outcome.runs.map((run) => run.runId) : [undefined]) {
      const history = await resilient('history', () => stack.clients.rawClient.workflow.getHandle(backupWorkflowId(userId), runId).fetchHistory());
      const leaks = leaksIn(textsIn(history), [...secretsOf(simClient), stack.vault.rootToken]);
      for (const leak of leaks) violations.add('secret-in-history', `a secret of ${leak.length} characters`, userId);
    }
  }
  return counts;
}

/** The rotation finished, failed nothing, and raised min_decryption_version. */
function checkRotation(driver: BackupDriver, violations: ViolationLog): void {
  if (!driver.rotationStarted) return;
  const report = driver.rotationReport;
  const problems = !report
    ? ['the rotation did not finish in time']
    : [
        ...(report.status !== 'COMPLETED' ? [`ended ${report.status}`] : []),
        ...(report.counts.clientCiphertexts.failed + report.counts.custodianShares.failed + report.counts.usersFailed > 0
          ? [`${report.failures.length} failures, e.g. ${report.failures[0]?.reason ?? ''}`]
          : []),
        ...(!report.minDecryptionVersion.raised ? [`min_decryption_version not raised: ${JSON.stringify(report.minDecryptionVersion)}`] : []),
      ];
  for (const problem of problems) violations.add('rotation-not-verified', problem);
}

async function checkRecoveries(stack: CampaignStack, driver: BackupDriver, violations: ViolationLog): Promise<void> {
  for (const outcome of driver.recoveryOutcomes.values()) {
    const simClient = stack.simulator.state.user(outcome.userId)!;
    checkRecovery(simClient, outcome, driver.outcomes.get(outcome.userId)?.result, violations);
    const history = await resilient('history', () => stack.clients.rawClient.workflow.getHandle(`recover-${outcome.userId}`).fetchHistory());
    for (const leak of leaksIn(textsIn(history), [...secretsOf(simClient), stack.vault.rootToken])) {
      violations.add('secret-in-history', `recovery: a secret of ${leak.length} characters`, outcome.userId);
    }
  }
}

/** No user secret, KMS credential, webhook secret or database password in any log of the run. */
function scanLogs(ctx: CampaignContext, stack: CampaignStack, users: CampaignUsers, violations: ViolationLog): void {
  const { runDir } = ctx.options;
  const allSecrets = new Set(users.userIds.flatMap((id) => secretsOf(stack.simulator.state.user(id)!)));
  const databasePassword = stack.postgres ? parseDatabaseUrl(stack.postgres.url).password : undefined;
  const temporalDatabasePassword = stack.cluster ? parseDatabaseUrl(stack.cluster.postgres.url).password : undefined;
  for (const file of readdirSync(runDir).filter((name) => name.endsWith('.log'))) {
    const text = readFileSync(join(runDir, file), 'utf8');
    for (const token of candidateTokens(text)) {
      if (allSecrets.has(token)) violations.add('secret-in-logs', `${file}: a secret of ${token.length} characters`);
    }
    for (const token of [stack.vault.rootToken, stack.appRole.secretId, LOCAL_KMS_CREDENTIALS.secretAccessKey]) {
      if (text.includes(token)) violations.add('secret-in-logs', `${file}: a KMS credential`);
    }
    if (stack.webhook && text.includes(stack.webhook.secret)) violations.add('secret-in-logs', `${file}: the webhook secret`);
    if (databasePassword && text.includes(databasePassword)) violations.add('secret-in-logs', `${file}: the database password`);
    if (temporalDatabasePassword && text.includes(temporalDatabasePassword)) violations.add('secret-in-logs', `${file}: Temporal's database password`);
  }
}
