import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodeVault from 'node-vault';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ShareRetrievalRefusedError } from '../../client/client-backup-share';
import { openEjectRetrieval } from '../../client/eject';
import { loadEjectConfig } from '../../client/eject-config';
import { createDatabasePool } from '../../db/pool';
import { ShareRetrievalAudit } from '../../db/share-retrieval-audit';
import { AuditTrail } from '../../db/audit-trail';
import { createBackupTestEnv, type BackupTestEnv } from '../support/backup-test-env';

const run = promisify(execFile);

/**
 * Eject retrieval on the real stack: the caller's own Vault token decrypts (its policy is the
 * authorization), every attempt is audited in PostgreSQL, and the shares never touch Temporal.
 */
let env: BackupTestEnv;
let pool: Pool;
let ejectEnv: NodeJS.ProcessEnv;
const tokens: Record<'operator' | 'noDecrypt', string> = { operator: '', noDecrypt: '' };

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
  pool = createDatabasePool(inject('databaseUrl'));
  const vault = nodeVault({ endpoint: env.vault.addr, token: env.vault.token });
  await vault.addPolicy({
    name: 'eject-operator',
    rules: 'path "transit/decrypt/mpc-backup" { capabilities = ["update"] }',
  });
  // A root client per call: node-vault's tokenCreate makes the client use the token it created.
  const create = async (policies: string[], displayName: string) =>
    ((await nodeVault({ endpoint: env.vault.addr, token: env.vault.token }).tokenCreate({ policies, display_name: displayName, ttl: '10m' })) as {
      auth: { client_token: string };
    }).auth.client_token;
  tokens.operator = await create(['eject-operator'], 'ops-alice');
  tokens.noDecrypt = await create(['default'], 'ops-mallory');
  ejectEnv = {
    VAULT_ADDR: env.vault.addr,
    PORTAL_ENCLAVE_URL: env.simulator.url,
    PORTAL_API_URL: env.simulator.url,
    CREDENTIALS_URL: `${env.simulator.url}/backend/users/{userId}/credentials`,
    DATABASE_URL: inject('databaseUrl'),
    LOG_LEVEL: 'error',
  };
});
afterAll(async () => {
  await pool?.end();
  await env?.close();
});

async function backedUp(prefix: string) {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  return { userId, result: await env.backups.waitForBackup(userId) };
}

async function retrieve(token: string, userId: string, reason = 'ticket SUP-1') {
  const retrieval = await openEjectRetrieval(loadEjectConfig({ ...ejectEnv, VAULT_TOKEN: token }));
  try {
    return await retrieval.getClientBackupShare(userId, { reason });
  } finally {
    await retrieval.close();
  }
}

describe('getClientBackupShare (eject retrieval)', () => {
  it('returns exactly the /v1/backup response of the newest completed backup to a caller whose Vault policy allows the decrypt, audited', async () => {
    const { userId } = await backedUp('eject-ok');
    await env.backups.startBackupWorkflow(userId);
    const newest = await env.backups.waitForBackup(userId);

    const release = await retrieve(tokens.operator, userId);
    expect(release.pairIds).toEqual(newest.pairIds);
    const issued = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    for (const curve of ['SECP256K1', 'ED25519'] as const) {
      const pair = issued.find((p) => p.id === newest.pairIds[curve])!;
      expect(release.shares[curve]).toEqual({ id: pair.id, share: pair.share });
    }
    expect(release.releasedTo).toBe('token-ops-alice');

    const audit = await new ShareRetrievalAudit(pool).listByUser(userId);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ requestedBy: 'token-ops-alice', outcome: 'released', reason: 'ticket SUP-1', pairIds: [newest.pairIds.SECP256K1, newest.pairIds.ED25519] });
    // And in the hash-chained audit trail: ids and the reason, never a share.
    const events = await new AuditTrail(pool).list({ userId });
    expect(events).toEqual([
      expect.objectContaining({ kind: 'eject.released', actor: 'token-ops-alice', subject: `eject/${userId}`, details: expect.objectContaining({ pairIds: [newest.pairIds.SECP256K1, newest.pairIds.ED25519], reason: 'ticket SUP-1' }) }),
    ]);
    expect(JSON.stringify(events)).not.toContain(release.shares.SECP256K1.share);
    // Nothing ran in Temporal for it: the user's only runs are the two backups.
    const runs = [];
    for await (const execution of env.backups.temporal.workflow.list({ query: `WorkflowId = 'backup-${userId}' OR WorkflowId = 'recover-${userId}'` })) runs.push(execution.type);
    expect(runs).toEqual(['backupWallet', 'backupWallet']);
  });

  it('is refused, and audited as refused, when the caller’s Vault policy does not allow the decrypt', async () => {
    const { userId, result } = await backedUp('eject-denied');
    const failure = await retrieve(tokens.noDecrypt, userId).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ShareRetrievalRefusedError);
    expect((failure as Error).message).toMatch(/Vault refused this caller's credentials the decryption/);
    const audit = await new ShareRetrievalAudit(pool).listByUser(userId);
    expect(audit).toEqual([
      expect.objectContaining({ requestedBy: 'token-ops-mallory', outcome: 'refused', pairIds: [result.pairIds.SECP256K1, result.pairIds.ED25519] }),
    ]);
    expect((await new AuditTrail(pool).list({ userId })).map((event) => [event.kind, event.actor])).toEqual([['eject.refused', 'token-ops-mallory']]);
  });

  it('is refused when the user has no completed backup, and needs a reason', async () => {
    const userId = env.seedUser('eject-none');
    await expect(retrieve(tokens.operator, userId)).rejects.toThrow(/no completed backup/);
    expect((await new ShareRetrievalAudit(pool).listByUser(userId)).map((row) => row.outcome)).toEqual(['refused']);
    await expect(retrieve(tokens.operator, userId, '  ')).rejects.toThrow(/a reason is required/);
  });

  it('the CLI writes the shares to a new owner-only file, prints no share, and never overwrites a file', async () => {
    const { userId, result } = await backedUp('eject-cli');
    const dir = mkdtempSync(join(tmpdir(), 'eject-'));
    const out = join(dir, 'shares.json');
    const cliEnv = { ...process.env, ...ejectEnv, VAULT_TOKEN: tokens.operator };
    const printed = await run('npx', ['tsx', 'client/cli.ts', 'eject', userId, '--reason', 'ticket SUP-2', '--out', out], { env: cliEnv });
    const written = JSON.parse(readFileSync(out, 'utf8')) as { backupResponse: Record<string, { id: string; share: string }> };
    expect(written.backupResponse.SECP256K1!.id).toBe(result.pairIds.SECP256K1);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(printed.stdout).toContain(result.pairIds.SECP256K1);
    expect(printed.stdout).not.toContain(written.backupResponse.SECP256K1!.share);

    writeFileSync(join(dir, 'existing.json'), 'keep');
    const refused = await run('npx', ['tsx', 'client/cli.ts', 'eject', userId, '--reason', 'again', '--out', join(dir, 'existing.json')], { env: cliEnv }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect((refused as { code: number }).code).not.toBe(0);
    expect(readFileSync(join(dir, 'existing.json'), 'utf8')).toBe('keep');
    // Refused before anything was retrieved: the audit has the one release above, not a second.
    expect((await new ShareRetrievalAudit(pool).listByUser(userId)).map((row) => row.reason)).toEqual(['ticket SUP-2']);
    // A refused retrieval leaves no (empty) file behind.
    const none = await run('npx', ['tsx', 'client/cli.ts', 'eject', env.seedUser('eject-cli-none'), '--reason', 'r', '--out', join(dir, 'none.json')], { env: cliEnv }).catch(
      (error: { code: number }) => error,
    );
    expect((none as { code: number }).code).toBe(2);
    expect(existsSync(join(dir, 'none.json'))).toBe(false);
  });
});

describe('getClientBackupShare with KMS_PROVIDER=aws-kms', () => {
  let awsEnv: BackupTestEnv;

  beforeAll(async () => {
    awsEnv = await createBackupTestEnv({ kms: 'aws-kms' });
    await awsEnv.startWorker();
  });
  afterAll(() => awsEnv?.close());

  it('decrypts the newest completed backup with the caller’s own AWS credentials, and audits who they are (the access key id)', async () => {
    const userId = awsEnv.seedUser('eject-aws');
    await awsEnv.backups.startBackupWorkflow(userId);
    const newest = await awsEnv.backups.waitForBackup(userId);
    const kmsEnv = Object.fromEntries(Object.entries(awsEnv.workerEnv).filter(([name]) => name.startsWith('AWS_') || name === 'KMS_PROVIDER'));
    const retrieval = await openEjectRetrieval(
      loadEjectConfig({
        ...kmsEnv,
        PORTAL_ENCLAVE_URL: awsEnv.simulator.url,
        PORTAL_API_URL: awsEnv.simulator.url,
        CREDENTIALS_URL: `${awsEnv.simulator.url}/backend/users/{userId}/credentials`,
        DATABASE_URL: inject('databaseUrl'),
        LOG_LEVEL: 'error',
      }),
    );
    let release;
    try {
      release = await retrieval.getClientBackupShare(userId, { reason: 'ticket SUP-AWS' });
    } finally {
      await retrieval.close();
    }
    const issued = awsEnv.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    for (const curve of ['SECP256K1', 'ED25519'] as const) {
      const pair = issued.find((p) => p.id === newest.pairIds[curve])!;
      expect(pair.clientCipherText).toMatch(/^awskms:e1:v1:/);
      expect(release.shares[curve]).toEqual({ id: pair.id, share: pair.share });
    }
    expect(release.releasedTo).toBe(`aws:${kmsEnv.AWS_ACCESS_KEY_ID}`);
    const audit = await new ShareRetrievalAudit(pool).listByUser(userId);
    expect(audit).toMatchObject([{ requestedBy: `aws:${kmsEnv.AWS_ACCESS_KEY_ID}`, outcome: 'released', reason: 'ticket SUP-AWS' }]);
  });
});
