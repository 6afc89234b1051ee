import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EncryptionCodec } from '../../codec/encryption-codec';
import { toCodecKeyRing } from '../../config/codec-config';
import { capturedLogs, createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { leaksIn, secretsOf, textsIn } from '../../chaos/secret-scan';

let env: BackupTestEnv;
const userIds: string[] = [];

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();

  // Backups that leave as much as possible in history: retries, failures, a lost response,
  // a park with an error body that echoes the bearer key, an operator retry.
  const plain = env.seedUser('plain');
  const lost = env.seedUser('lost');
  env.simulator.faults.add({ route: 'backup', kind: 'lost-response', count: 1, userId: lost });
  env.simulator.faults.add({ route: 'storeCipherText', kind: 'status', status: 503, count: 1, userId: lost });
  const echoed = env.seedUser('echo');
  const echoKey = env.simulator.state.user(echoed)!.apiKey;
  env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, body: `invalid credentials: Bearer ${echoKey}`, userId: echoed });
  userIds.push(plain, lost, echoed);

  for (const userId of userIds) await env.backups.startBackupWorkflow(userId);
  await eventually('the echo backup to park', async () =>
    (await env.backups.getBackupStatus(echoed)).status === 'NEEDS_ATTENTION' ? true : undefined,
  );
  env.simulator.faults.clear();
  await env.backups.retryBackup(echoed);
  for (const userId of userIds) await env.backups.waitForBackup(userId);
});
afterAll(() => env?.close());

async function rawHistory(userId: string) {
  return env.rawClient.workflow.getHandle(`backup-${userId}`).fetchHistory();
}

describe('no plaintext share, signing share, client API key or Vault token outside the codec', () => {
  it('raw workflow histories (read without the codec) hold none of them', async () => {
    for (const userId of userIds) {
      const history = await rawHistory(userId);
      const leaks = leaksIn(textsIn(history), [...secretsOf(env.simulator.state.user(userId)!), env.vault.token]);
      expect(leaks, `secrets of ${userId} in raw history`).toEqual([]);
    }
  });

  it('the same histories decoded with the codec do carry the shares (the scan can find them)', async () => {
    const codec = new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }));
    const userId = userIds[0]!;
    const history = await rawHistory(userId);
    const payloads: temporal.api.common.v1.IPayload[] = [];
    const collect = (value: unknown) => {
      if (!value || typeof value !== 'object') return;
      const record = value as Record<string, unknown>;
      if (record.metadata && record.data instanceof Uint8Array) payloads.push(record as temporal.api.common.v1.IPayload);
      else for (const item of Object.values(record)) collect(item);
    };
    collect(history);
    const decoded = await codec.decode(payloads);
    const shares = env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs.map((p) => p.share));
    expect(leaksIn(textsIn(decoded), shares).sort()).toEqual([...shares].sort());
  });

  it('search attributes hold only status and step, and the memo is encrypted', async () => {
    const raw = await env.rawClient.workflowService.describeWorkflowExecution({
      namespace: 'default',
      execution: { workflowId: `backup-${userIds[2]}` },
    });
    const info = raw.workflowExecutionInfo!;
    const custom = Object.keys(info.searchAttributes?.indexedFields ?? {}).filter((key) => key.startsWith('Backup'));
    expect(custom.sort()).toEqual(['BackupStatus', 'BackupStep']);
    const memo = info.memo?.fields?.startRequestId;
    expect(Buffer.from(memo!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    expect(leaksIn(textsIn(raw), secretsOf(env.simulator.state.user(userIds[2]!)!))).toEqual([]);
  });

  it('worker logs, the Temporal server log and the Vault log hold none of them', () => {
    const secrets = [...userIds.flatMap((id) => secretsOf(env.simulator.state.user(id)!))];
    expect(capturedLogs.length).toBeGreaterThan(0);
    expect(leaksIn(capturedLogs, secrets)).toEqual([]);
    const serverLogs = ['temporal.log', 'vault.log'].map((file) => readFileSync(join(inject('runDir'), file), 'utf8'));
    expect(leaksIn(serverLogs, secrets)).toEqual([]);
  });
});
