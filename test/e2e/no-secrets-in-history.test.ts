import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EncryptionCodec } from '../../codec/encryption-codec';
import { toCodecKeyRing } from '../../config/codec-config';
import type { RecoveryResult } from '../../domain/recovery-types';
import { capturedLogs, createBackupTestEnv, eventually, KMS_PROVIDERS, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveryClient, operatorSigner } from '../support/operators';
import { LOCAL_KMS_CREDENTIALS } from '../../stack/local-kms-server';
import { leaksIn, secretsOf, textsIn } from '../../chaos/secret-scan';
import { decodedTexts } from '../support/decoded-history';

let env: BackupTestEnv;
const userIds: string[] = [];
let recovered: RecoveryResult | undefined;

/** Backups and a recovery that leave as much as possible in history, with the given KMS provider. */
async function setUp(provider: (typeof KMS_PROVIDERS)[number]): Promise<void> {
  env = await createBackupTestEnv({ kms: provider });
  userIds.length = 0;
  await env.startWorker();

  // Backups that leave as much as possible in history: retries, failures, a lost response,
  // a park with an error body that echoes the bearer key, an operator retry.
  const plain = env.seedUser('plain');
  const lost = env.seedUser('lost');
  env.simulator.faults.add({ route: 'backup', kind: 'lost-response', count: 1, userId: lost });
  env.simulator.faults.add({ route: 'storeCipherText', kind: 'status', status: 503, count: 1, userId: lost });
  const echoed = env.seedUser('echo');
  const echoKey = env.simulator.state.user(echoed)!.apiKey;
  // An error body that echoes the bearer key and a share (as a careless proxy or server might).
  const echoShare = innerShareOf(env.simulator.state.user(echoed)!.generateResponse);
  env.simulator.faults.add({
    route: 'markPairs',
    kind: 'status',
    status: 401,
    body: { message: `invalid credentials: Bearer ${echoKey} for share ${echoShare}` },
    userId: echoed,
  });
  userIds.push(plain, lost, echoed);

  for (const userId of userIds) await env.backups.startBackupWorkflow(userId);
  await eventually('the echo backup to park', async () =>
    (await env.backups.getBackupStatus(echoed)).status === 'NEEDS_ATTENTION' ? true : undefined,
  );
  env.simulator.faults.clear();
  await env.backups.retryBackup(echoed, operatorSigner('ops-mallory'));
  for (const userId of userIds) await env.backups.waitForBackup(userId);

  // A recovery, with a lost /v1/recover answer: its history carries the rebuilt /v1/backup response
  // and the new signing shares (both sealed), and its fresh backup uses the new signing shares.
  env.simulator.faults.add({ route: 'recover', kind: 'lost-response', count: 1, userId: plain });
  const recoveries = approvingRecoveryClient(env.backups.temporal, env.taskQueue);
  await recoveries.startRecovery(plain);
  recovered = await recoveries.waitForRecovery(plain);
  await env.backups.waitForBackup(plain, recovered.freshBackup!.runId);
  expect(recovered.orphanedSigningPairIds).toHaveLength(2);
  env.simulator.faults.clear();
}

function innerShareOf(generateResponse: string): string {
  const first = Object.values(JSON.parse(generateResponse) as Record<string, { share: string }>)[0]!;
  return (JSON.parse(Buffer.from(first.share, 'base64').toString('utf8')) as { share: string }).share;
}

/** The decoded message of the first failed activity of the user's backup. */
async function lastErrorOf(userId: string): Promise<string> {
  const history = await env.backups.temporal.workflow.getHandle(`backup-${userId}`).fetchHistory();
  const event = history.events!.find((e) => e.activityTaskFailedEventAttributes)!;
  const failure = event.activityTaskFailedEventAttributes!.failure!;
  const { DefaultFailureConverter, defaultPayloadConverter } = await import('@temporalio/common');
  const codec = new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }));
  const [decoded] = await codec.decode([failure.encodedAttributes!]);
  const error = new DefaultFailureConverter().failureToError({ ...failure, encodedAttributes: decoded }, defaultPayloadConverter);
  return error.message;
}

async function rawHistory(userId: string, kind: 'backup' | 'recover' = 'backup') {
  return env.rawClient.workflow.getHandle(`${kind}-${userId}`).fetchHistory();
}

/** The KMS credentials the workers hold: neither may appear anywhere (the AWS one is local-kms's test key). */
const kmsSecrets = () => [env.vault.token, LOCAL_KMS_CREDENTIALS.secretAccessKey];

describe.each(KMS_PROVIDERS)('no plaintext share, signing share, client API key or KMS credential outside the codec (KMS_PROVIDER=%s)', (provider) => {
  beforeAll(() => setUp(provider));
  afterAll(() => env?.close());

  it('raw workflow histories (read without the codec) hold none of them', async () => {
    for (const [userId, kind] of [...userIds.map((id) => [id, 'backup'] as const), [userIds[0]!, 'recover'] as const]) {
      const history = await rawHistory(userId, kind);
      const leaks = leaksIn(textsIn(history), [...secretsOf(env.simulator.state.user(userId)!), ...kmsSecrets()]);
      expect(leaks, `secrets of ${userId} in raw ${kind} history`).toEqual([]);
    }
  });

  it('the same histories decoded with the client’s codec key hold none of them either: shares are sealed to the workers', async () => {
    for (const [userId, kind] of [...userIds.map((id) => [id, 'backup'] as const), [userIds[0]!, 'recover'] as const]) {
      const texts = await decodedTexts(await rawHistory(userId, kind));
      // The decode really opened the payloads: the user id and the run's pair ids are readable.
      const pairIds = Object.values(kind === 'backup' ? (await env.backups.waitForBackup(userId)).pairIds : recovered!.backupPairIds);
      expect(leaksIn(texts, [userId, ...pairIds]).sort()).toEqual([userId, ...pairIds].sort());
      expect(leaksIn(texts, [...secretsOf(env.simulator.state.user(userId)!), ...kmsSecrets()]), `secrets of ${userId} in decoded ${kind} history`).toEqual([]);
    }
  });

  it('failure messages are encoded in history, and a share or key quoted by an error body is redacted', async () => {
    const echoed = userIds[2]!;
    const history = await rawHistory(echoed);
    const failed = history.events!.find((event) => event.activityTaskFailedEventAttributes)!.activityTaskFailedEventAttributes!;
    expect(failed.failure!.message).toBe('Encoded failure');
    expect(textsIn(history).some((text) => text.includes('invalid credentials'))).toBe(false);
    // Decoded (as the UI with the codec server will show it), the message says what happened, minus the secrets.
    const lastError = await lastErrorOf(echoed);
    expect(lastError).toContain('invalid credentials: Bearer [redacted] for share [redacted');
    expect(leaksIn([lastError], secretsOf(env.simulator.state.user(echoed)!))).toEqual([]);
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

  it('worker logs, the Temporal server log, the Vault log and the local-kms log hold none of them', () => {
    // Not the Vault token: the Vault dev server prints its own root token in vault.log.
    const secrets = [...userIds.flatMap((id) => secretsOf(env.simulator.state.user(id)!)), LOCAL_KMS_CREDENTIALS.secretAccessKey];
    expect(capturedLogs.length).toBeGreaterThan(0);
    expect(leaksIn(capturedLogs, secrets)).toEqual([]);
    const serverLogs = ['temporal.log', 'vault.log', 'local-kms.log'].map((file) => readFileSync(join(inject('runDir'), file), 'utf8'));
    expect(leaksIn(serverLogs, secrets)).toEqual([]);
  });
});
