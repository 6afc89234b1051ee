import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EjectClient } from '../../client/eject-client';
import { collectEject, type CollectedEject } from '../../client/eject';
import { createDatabasePool } from '../../db/pool';
import { ShareRetrievalAudit } from '../../db/share-retrieval-audit';
import { AuditTrail } from '../../db/audit-trail';
import { ejectWorkflowId } from '../../domain/user-id';
import { leaksIn, secretsOf } from '../../chaos/secret-scan';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { decodedTexts } from '../support/decoded-history';
import { operatorSigner, type TestOperator } from '../support/operators';

const run = promisify(execFile);

/**
 * Eject under the two-person rule on the real stack (Temporal, Vault, PostgreSQL, the simulator):
 * the request waits for two distinct verified approvers; only then does a worker seal the newest
 * completed backup to the requester's one-time key, and the requester's key file alone opens it.
 * Every approval and the release are in the audit trail before anything can be collected; no share
 * reaches Temporal, sealed or not.
 */
let env: BackupTestEnv;
let pool: Pool;
const dir = mkdtempSync(join(tmpdir(), 'eject-'));
const collectConfig = () => ({ databaseUrl: inject('databaseUrl'), logLevel: 'error' });
const as = (operator: TestOperator) => new EjectClient(env.backups.temporal, env.taskQueue, operatorSigner(operator));

async function backedUp(prefix: string) {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  return { userId, result: await env.backups.waitForBackup(userId) };
}

/** ops-carol requests; returns once the run waits for approvals. */
async function requested(userId: string, reason = 'ticket SUP-1') {
  const keyFile = join(dir, `${userId}.key.json`);
  const started = await as('ops-carol').requestEject(userId, reason, keyFile);
  await eventually('the eject to await approval', async () => ((await as('ops-carol').getEjectStatus(userId)).progress?.approval?.expiresAt ? true : undefined));
  return { ...started, keyFile };
}

async function approvedByTwo(userId: string) {
  await as('ops-alice').approveEject(userId);
  await as('ops-bob').approveEject(userId);
}

function issuedShares(userId: string, pairIds: Record<string, string>) {
  const issued = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
  return Object.fromEntries(Object.entries(pairIds).map(([curve, id]) => [curve, { id, share: issued.find((pair) => pair.id === id)!.share }]));
}

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker({ DATABASE_URL: inject('databaseUrl') });
  pool = createDatabasePool(inject('databaseUrl'));
});
afterAll(async () => {
  await pool?.end();
  await env?.close();
});

describe('eject under the two-person rule (real Temporal, Vault, PostgreSQL, Portal simulator)', () => {
  it('releases the newest completed backup only after two approvers, sealed to the requester’s key; collected once, exactly what Portal issued', async () => {
    const { userId } = await backedUp('eject-ok');
    await env.backups.startBackupWorkflow(userId);
    const newest = await env.backups.waitForBackup(userId);
    const { keyFile } = await requested(userId);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);

    await expect(as('ops-carol').approveEject(userId)).rejects.toThrow(/ops-carol requested this eject and cannot approve it/);
    await expect(as('ops-mallory').approveEject(userId)).rejects.toThrow(/ops-mallory is not an approver/);
    await as('ops-alice').approveEject(userId);
    // One approval: nothing released, nothing to collect.
    await expect(collectEject(userId, { key: keyFile, out: join(dir, 'early.json') }, collectConfig())).rejects.toThrow(/nothing was released for user/);
    await as('ops-bob').approveEject(userId);
    const result = await as('ops-carol').waitForEject(userId);
    expect(result).toMatchObject({ status: 'RELEASED', release: { pairIds: newest.pairIds }, approval: { requestedBy: 'ops-carol' } });

    const out = join(dir, `${userId}.shares.json`);
    const keyCopy = join(dir, `${userId}.key-copy.json`);
    writeFileSync(keyCopy, readFileSync(keyFile));
    const printed = await collectEject(userId, { key: keyFile, out }, collectConfig());
    expect(printed).toMatchObject({ userId, pairIds: newest.pairIds, requestedBy: 'ops-carol', approvedBy: ['ops-alice', 'ops-bob'], writtenTo: out });
    expect(JSON.stringify(printed)).not.toContain(issuedShares(userId, newest.pairIds).SECP256K1!.share);
    const written = JSON.parse(readFileSync(out, 'utf8')) as CollectedEject;
    expect(written.backupResponse).toEqual(issuedShares(userId, newest.pairIds));
    expect(statSync(out).mode & 0o777).toBe(0o600);
    // The key file is deleted (it opens nothing any more), and a copy of it cannot collect twice.
    expect(existsSync(keyFile)).toBe(false);
    await expect(collectEject(userId, { key: keyCopy, out: join(dir, 'twice.json') }, collectConfig())).rejects.toThrow(/already collected at/);

    // The audit trail: each approval, then the release, all by verified names; share_retrievals has the release.
    const events = await new AuditTrail(pool).list({ userId });
    expect(events.filter((event) => event.kind.startsWith('eject.')).map((event) => [event.kind, event.actor])).toEqual([
      ['eject.approved', 'ops-alice'],
      ['eject.approved', 'ops-bob'],
      ['eject.released', 'ops-carol'],
    ]);
    expect((await new ShareRetrievalAudit(pool).listByUser(userId)).map((row) => [row.outcome, row.requestedBy, row.reason])).toEqual([['released', 'ops-carol', 'ticket SUP-1']]);
    // The run's history, even decoded with the clients' codec key, holds no share.
    const history = await env.rawClient.workflow.getHandle(ejectWorkflowId(userId)).fetchHistory();
    const texts = await decodedTexts(history);
    expect(leaksIn(texts, [userId]).length).toBe(1);
    expect(leaksIn(texts, secretsOf(env.simulator.state.user(userId)!))).toEqual([]);
  });

  it('a key file other than the requester’s opens nothing, and leaves the release collectable', async () => {
    const { userId } = await backedUp('eject-otherkey');
    const { keyFile } = await requested(userId);
    await approvedByTwo(userId);
    await as('ops-carol').waitForEject(userId);
    // Another eject's key file, rewritten to name this user: the seal is to another key.
    const other = await backedUp('eject-otherkey-2');
    const { keyFile: otherKey } = await requested(other.userId);
    const forged = JSON.parse(readFileSync(otherKey, 'utf8')) as { userId: string };
    const forgedFile = join(dir, 'forged.key.json');
    writeFileSync(forgedFile, JSON.stringify({ ...forged, userId }));
    await expect(collectEject(userId, { key: forgedFile, out: join(dir, 'forged.json') }, collectConfig())).rejects.toThrow(/does not open with this key file/);
    expect(existsSync(join(dir, 'forged.json'))).toBe(false);
    await collectEject(userId, { key: keyFile, out: join(dir, 'otherkey.json') }, collectConfig());
  });

  it('a user without a completed backup: the approved eject fails with the reason, audited as refused', async () => {
    const userId = env.seedUser('eject-none');
    await requested(userId);
    await approvedByTwo(userId);
    await expect(as('ops-carol').waitForEject(userId)).rejects.toThrow(/NoCompletedBackupError/);
    const events = await new AuditTrail(pool).list({ userId });
    expect(events.map((event) => event.kind)).toEqual(['eject.approved', 'eject.approved', 'eject.refused']);
  });

  it('the CLI: request (key file 0600), status, collect to a new owner-only file that is never an existing one', async () => {
    const { userId, result } = await backedUp('eject-cli');
    const keyFile = join(dir, 'cli.key.json');
    const cliEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: env.workerEnv.TEMPORAL_ADDRESS,
      TEMPORAL_TASK_QUEUE: env.taskQueue,
      PAYLOAD_CODEC_KEYS: inject('codecKeys'),
      VAULT_ADDR: inject('vaultAddr'),
      OPERATOR_NAME: 'ops-carol',
      VAULT_TOKEN: inject('signingTokens')['ops-carol'],
      DATABASE_URL: inject('databaseUrl'),
      LOG_LEVEL: 'error',
    };
    const cli = (...args: string[]) => run('npx', ['tsx', 'client/cli.ts', 'eject', ...args], { env: cliEnv });
    const requestedOut = await cli('request', userId, '--reason', 'ticket SUP-2', '--key-out', keyFile);
    expect(requestedOut.stdout).toContain(ejectWorkflowId(userId));
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    await eventually('the eject to await approval', async () => ((await as('ops-carol').getEjectStatus(userId)).progress?.approval?.expiresAt ? true : undefined));
    await approvedByTwo(userId);
    await as('ops-carol').waitForEject(userId);
    expect((await cli('status', userId)).stdout).toContain('RELEASED');

    writeFileSync(join(dir, 'existing.json'), 'keep');
    const refused = await cli('collect', userId, '--key', keyFile, '--out', join(dir, 'existing.json')).catch((error: { code: number }) => error);
    expect((refused as { code: number }).code).not.toBe(0);
    expect(readFileSync(join(dir, 'existing.json'), 'utf8')).toBe('keep');
    // Refused before the release was emptied: it can still be collected, once.
    const collected = await cli('collect', userId, '--key', keyFile, '--out', join(dir, 'cli.json'));
    const written = JSON.parse(readFileSync(join(dir, 'cli.json'), 'utf8')) as CollectedEject;
    expect(written.backupResponse).toEqual(issuedShares(userId, result.pairIds));
    expect(collected.stdout).toContain(result.pairIds.SECP256K1);
    expect(collected.stdout).not.toContain(written.backupResponse.SECP256K1.share);
  });
});

describe('eject with KMS_PROVIDER=aws-kms', () => {
  let awsEnv: BackupTestEnv;
  beforeAll(async () => {
    awsEnv = await createBackupTestEnv({ kms: 'aws-kms' });
    await awsEnv.startWorker({ DATABASE_URL: inject('databaseUrl') });
  });
  afterAll(() => awsEnv?.close());

  it('the workers decrypt the envelope-encrypted backup and seal it to the requester: exactly what Portal issued', async () => {
    const userId = awsEnv.seedUser('eject-aws');
    await awsEnv.backups.startBackupWorkflow(userId);
    const newest = await awsEnv.backups.waitForBackup(userId);
    const client = (operator: TestOperator) => new EjectClient(awsEnv.backups.temporal, awsEnv.taskQueue, operatorSigner(operator));
    const keyFile = join(dir, `${userId}.key.json`);
    await client('ops-carol').requestEject(userId, 'ticket SUP-AWS', keyFile);
    await eventually('the eject to await approval', async () => ((await client('ops-carol').getEjectStatus(userId)).progress?.approval?.expiresAt ? true : undefined));
    await client('ops-alice').approveEject(userId);
    await client('ops-bob').approveEject(userId);
    await client('ops-carol').waitForEject(userId);
    await collectEject(userId, { key: keyFile, out: join(dir, `${userId}.json`) }, collectConfig());
    const issued = awsEnv.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    const written = JSON.parse(readFileSync(join(dir, `${userId}.json`), 'utf8')) as CollectedEject;
    for (const curve of ['SECP256K1', 'ED25519'] as const) {
      const pair = issued.find((p) => p.id === newest.pairIds[curve])!;
      expect(pair.clientCipherText).toMatch(/^awskms:e1:v1:/);
      expect(written.backupResponse[curve]).toEqual({ id: pair.id, share: pair.share });
    }
  });
});
