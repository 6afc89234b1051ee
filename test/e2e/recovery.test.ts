import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupFailedError } from '../../client/backup-client';
import { RecoveryClient } from '../../client/recovery-client';
import { createBackupTestEnv, eventually, KMS_PROVIDERS, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import type { KmsProviderKind } from '../../adapters/kms/kms-provider';
import { approvingRecoveries, operatorSigner } from '../support/operators';

/**
 * recoverWallet end to end on the real stack (Portal store): the simulator checks what /v1/recover
 * is given against the pairs it issued and accepts the recovered signing shares for a new backup
 * only once they are marked STORED_CLIENT.
 */
let env: BackupTestEnv;
let recoveries: RecoveryClient;
/** Starts a recovery as ops-carol and has ops-alice and ops-bob approve it (test/support/operators.ts). */
let startApproved: RecoveryClient['startRecovery'];
/** Retry and abandon are an approver's (ops-alice). */
let approver: RecoveryClient;

async function backedUp(prefix: string): Promise<string> {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  await env.backups.waitForBackup(userId);
  return userId;
}

const signingPairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.signingSharePairs);
const callsTo = (route: string) => (env.simulator.calls as Record<string, number>)[route] ?? 0;

function waitUntilRecoveryParked(userId: string) {
  return eventually(`recovery of ${userId} to park`, async () => {
    const status = await recoveries.getRecoveryStatus(userId);
    return status.status === 'NEEDS_ATTENTION' ? status : undefined;
  });
}

describe.each(KMS_PROVIDERS)('recoverWallet (KMS_PROVIDER=%s)', (provider: KmsProviderKind) => {
  beforeAll(async () => {
    env = await createBackupTestEnv({ kms: provider });
    await env.startWorker();
    const operators = approvingRecoveries({ temporal: env.backups.temporal, taskQueue: env.taskQueue });
    ({ recoveries, startApproved } = operators);
    approver = operators.as('ops-alice');
  });
  afterAll(() => env?.close());

  it('recovers from the newest completed backup, hands the new signing shares over before marking, and a fresh backup uses them', async () => {
    const userId = await backedUp('recover-happy');
    await env.backups.startBackupWorkflow(userId);
    const newest = await env.backups.waitForBackup(userId);
    const before = env.simulator.state.user(userId)!.generateResponse;

    const started = await startApproved(userId);
    expect(started).toMatchObject({ workflowId: `recover-${userId}`, alreadyRunning: false });
    const result = await recoveries.waitForRecovery(userId);

    expect(result.status).toBe('COMPLETED');
    expect(result.backupPairIds).toEqual(newest.pairIds);
    expect(result.orphanedSigningPairIds).toEqual([]);
    // The backend now holds the new signing shares (what its credentials route hands out)…
    const handedOver = JSON.parse(env.simulator.state.user(userId)!.generateResponse) as Record<string, { id: string }>;
    expect(handedOver.SECP256K1!.id).toBe(result.signingPairIds.SECP256K1);
    expect(handedOver.ED25519!.id).toBe(result.signingPairIds.ED25519);
    expect(env.simulator.state.user(userId)!.generateResponse).not.toBe(before);
    // …and Portal has them marked.
    const marked = signingPairsOf(userId).filter((pair) => Object.values(result.signingPairIds).includes(pair.id));
    expect(marked.map((pair) => pair.status)).toEqual(['completed', 'completed']);

    // The fresh backup ran with the recovered signing shares (the simulator refuses any others).
    expect(result.freshBackup?.alreadyRunning).toBe(false);
    const fresh = await env.backups.waitForBackup(userId, result.freshBackup!.runId);
    expect(fresh.status).toBe('COMPLETED');
    expect(Object.values(fresh.pairIds)).not.toContain(newest.pairIds.SECP256K1);
    // So does any later backup, and a second recovery restores from the fresh one.
    await env.backups.startBackupWorkflow(userId);
    await env.backups.waitForBackup(userId);
    await startApproved(userId, { freshBackup: false });
    const second = await recoveries.waitForRecovery(userId);
    expect(second.freshBackup).toBeUndefined();
  });

  it('is refused before anything is made when the user has no completed backup', async () => {
    const userId = env.seedUser('recover-none');
    const recoverCalls = callsTo('recover');
    await startApproved(userId);
    const failure = await recoveries.waitForRecovery(userId).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BackupFailedError);
    expect((failure as BackupFailedError).reasonType).toBe('NoCompletedBackupError');
    expect((failure as Error).message).toMatch(/failed at FIND_BACKUP, before Portal made new signing shares: .*no completed backup/);
    expect(callsTo('recover')).toBe(recoverCalls);
  });

  it('a ciphertext altered in the store fails DECRYPT with the reason, and /v1/recover is never called', async () => {
    const userId = await backedUp('recover-tampered');
    const other = await backedUp('recover-donor');
    // Put another user's (valid) ciphertext in place of this user's: it does not decrypt in this user's context.
    const pair = env.simulator.state.user(userId)!.wallets[0]!.backupSharePairs[0]!;
    pair.clientCipherText = env.simulator.state.user(other)!.wallets[0]!.backupSharePairs[0]!.clientCipherText!;
    const recoverCalls = callsTo('recover');
    await startApproved(userId);
    const failure = (await recoveries.waitForRecovery(userId).catch((error: unknown) => error)) as BackupFailedError;
    expect(failure.reasonType).toBe('StoredBackupInvalidError');
    expect(failure.message).toContain(`pair ${pair.id} does not decrypt in the context of user ${userId}`);
    // The KMS's own reason for the item: Vault's, from the 400's batch_results; AWS KMS refusing the data key in this context.
    expect(failure.message).toMatch(provider === 'vault-transit' ? /message authentication failed/ : /cannot decrypt its data key in this context/);
    expect(callsTo('recover')).toBe(recoverCalls);
  });

  it('transient faults at every step are retried: Portal 503s, the KMS down during DECRYPT, 500 on the mark', async () => {
    const userId = await backedUp('recover-transient');
    env.simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, count: 1, userId });
    env.simulator.faults.add({ route: 'recover', kind: 'status', status: 502, count: 1, userId });
    env.simulator.faults.add({ route: 'signingShares', kind: 'status', status: 503, count: 1, userId });
    env.simulator.faults.add({ route: 'markSigningPairs', kind: 'status', status: 500, count: 1, userId });
    await env.kmsProxy.setMode('refuse');
    await startApproved(userId, { freshBackup: false });
    await eventually('the recovery to reach DECRYPT', async () => ((await recoveries.getRecoveryStatus(userId)).step === 'DECRYPT' ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await env.kmsProxy.setMode('pass');
    const result = await recoveries.waitForRecovery(userId);
    expect(result.status).toBe('COMPLETED');
    const progressAttempts = (await env.backups.temporal.workflow.getHandle(`recover-${userId}`).fetchHistory()).events!.filter(
      (event) => event.activityTaskFailedEventAttributes,
    );
    // Retries happen inside activities (no failed-activity events): the workflow saw one attempt per step.
    expect(progressAttempts).toEqual([]);
  });

  it('a lost /v1/recover answer: the retry recovers, and the signing pairs the lost call made are reported and never marked', async () => {
    const userId = await backedUp('recover-lost');
    env.simulator.faults.add({ route: 'recover', kind: 'lost-response', count: 1, userId });
    await startApproved(userId, { freshBackup: false });
    const result = await recoveries.waitForRecovery(userId);
    expect(result.orphanedSigningPairIds).toHaveLength(2);
    const orphans = signingPairsOf(userId).filter((pair) => result.orphanedSigningPairIds.includes(pair.id));
    expect(orphans.map((pair) => pair.status)).toEqual(['incomplete', 'incomplete']);
    expect(result.orphanedSigningPairIds).not.toContain(result.signingPairIds.SECP256K1);
  });

  it('a lost /v1/recover answer and a failed look for its pairs: the run looks again and still names them', async () => {
    const userId = await backedUp('recover-lost-scan');
    env.simulator.faults.add({ route: 'recover', kind: 'lost-response', count: 1, userId });
    const recoverCalls = () => env.simulator.calls.recover ?? 0;
    const before = recoverCalls();
    await startApproved(userId, { freshBackup: false });
    // Once the first /v1/recover has been lost, the retry's own look (its next Portal client read) fails.
    await eventually('the first /v1/recover call', async () => (recoverCalls() > before ? true : undefined));
    env.simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, count: 1, userId });
    const result = await recoveries.waitForRecovery(userId);
    expect(result.orphanedSigningPairIds).toHaveLength(2);
    expect(result.orphanScanError).toBeUndefined();
    const orphans = signingPairsOf(userId).filter((pair) => result.orphanedSigningPairIds.includes(pair.id));
    expect(orphans.map((pair) => pair.status)).toEqual(['incomplete', 'incomplete']);
    const history = await env.backups.temporal.workflow.getHandle(`recover-${userId}`).fetchHistory();
    const types = history.events!.map((event) => event.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(types).toContain('findOrphanedSigningPairs');
  });

  it('the backend refusing the new signing shares parks HAND_OVER with nothing marked; fixed and retried, it completes', async () => {
    const userId = await backedUp('recover-refused');
    env.simulator.faults.add({ route: 'signingShares', kind: 'status', status: 422, userId });
    const generateBefore = env.simulator.state.user(userId)!.generateResponse;
    await startApproved(userId, { freshBackup: false });
    const parked = await waitUntilRecoveryParked(userId);
    expect(parked.step).toBe('HAND_OVER');
    expect(parked.progress?.lastError?.type).toBe('SigningShareHandoverRejectedError');
    const made = parked.progress!.signingPairIds!;
    expect(signingPairsOf(userId).filter((pair) => Object.values(made).includes(pair.id)).map((p) => p.status)).toEqual(['incomplete', 'incomplete']);
    expect(env.simulator.state.user(userId)!.generateResponse).toBe(generateBefore);
    // A retry while the cause persists parks again; fixed, it completes with the same signing shares.
    env.simulator.faults.clear();
    await approver.retryRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.signingPairIds).toEqual(made);
    expect(signingPairsOf(userId).filter((pair) => Object.values(made).includes(pair.id)).map((p) => p.status)).toEqual(['completed', 'completed']);
  });

  it('after /v1/recover a Temporal cancel cannot drop the new signing shares: the parked run stays parked, and once retried completes', async () => {
    const userId = await backedUp('recover-cancel');
    env.simulator.faults.add({ route: 'signingShares', kind: 'status', status: 400, userId });
    await startApproved(userId, { freshBackup: false });
    const parked = await waitUntilRecoveryParked(userId);
    await env.backups.temporal.workflow.getHandle(`recover-${userId}`).cancel();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const after = await recoveries.getRecoveryStatus(userId);
    expect(after).toMatchObject({ execution: 'RUNNING', status: 'NEEDS_ATTENTION', step: 'HAND_OVER' });
    env.simulator.faults.clear();
    await approver.retryRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.signingPairIds).toEqual(parked.progress!.signingPairIds);
    expect(JSON.parse(env.simulator.state.user(userId)!.generateResponse).SECP256K1.id).toBe(result.signingPairIds.SECP256K1);
  });

  it('a permanent refusal of the mark parks MARK_SIGNING; an operator can abandon it with a reason', async () => {
    const userId = await backedUp('recover-mark');
    env.simulator.faults.add({ route: 'markSigningPairs', kind: 'status', status: 403, userId });
    await startApproved(userId, { freshBackup: false });
    const parked = await waitUntilRecoveryParked(userId);
    expect(parked.step).toBe('MARK_SIGNING');
    expect(parked.progress?.lastError?.type).toBe('PortalAuthError');
    await expect(approver.abandonRecovery(userId, '')).rejects.toThrow(/abandon needs a reason/);
    await approver.abandonRecovery(userId, 'key revoked for this test');
    const failure = (await recoveries.waitForRecovery(userId).catch((error: unknown) => error)) as BackupFailedError;
    expect(failure.reasonType).toBe('RecoveryAbandoned');
    expect(failure.message).toContain('the backend holds the new signing shares but Portal has not marked them');
    expect((await recoveries.getRecoveryStatus(userId)).status).toBe('ABANDONED');
    env.simulator.faults.clear();
  });

  it('never runs alongside the user’s backup: it waits for a running one, and fails at once on a parked one', async () => {
    // A running backup (held at STORE): the recovery waits, then restores from that newer backup.
    const userId = await backedUp('recover-wait');
    env.simulator.faults.add({ route: 'storeCipherText', kind: 'latency', latencyMs: 2_500, count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    await startApproved(userId, { freshBackup: false });
    const backup = await env.backups.waitForBackup(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.backupPairIds).toEqual(backup.pairIds);

    // A parked backup: the recovery is refused with what to do.
    const parkedUser = await backedUp('recover-parked-backup');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 400, userId: parkedUser });
    await env.backups.startBackupWorkflow(parkedUser);
    await waitUntilParked(env.backups, parkedUser);
    await startApproved(parkedUser);
    const refused = (await recoveries.waitForRecovery(parkedUser).catch((error: unknown) => error)) as BackupFailedError;
    expect(refused.reasonType).toBe('OtherRunParkedError');
    expect(refused.message).toContain(`backup retry|abandon ${parkedUser}`);
    env.simulator.faults.clear();
    await env.backups.retryBackup(parkedUser, operatorSigner('ops-mallory'));
    await env.backups.waitForBackup(parkedUser);

    // A parked recovery: a backup of the user is refused at step 1, before Portal is asked for anything.
    const other = await backedUp('recover-parked-recovery');
    env.simulator.faults.add({ route: 'signingShares', kind: 'status', status: 400, userId: other });
    await startApproved(other, { freshBackup: false });
    await waitUntilRecoveryParked(other);
    const backupCalls = callsTo('backup');
    await env.backups.startBackupWorkflow(other);
    const backupFailure = (await env.backups.waitForBackup(other).catch((error: unknown) => error)) as BackupFailedError;
    expect(backupFailure.reasonType).toBe('OtherRunParkedError');
    expect(callsTo('backup')).toBe(backupCalls);
    env.simulator.faults.clear();
    await approver.retryRecovery(other);
    await recoveries.waitForRecovery(other);
  });

  it('refuses an invalid user id before reaching Temporal, and operator actions on a recovery that is not parked', async () => {
    await expect(recoveries.startRecovery('bad id')).rejects.toThrow(/userId/);
    const userId = await backedUp('recover-not-parked');
    await startApproved(userId, { freshBackup: false });
    await recoveries.waitForRecovery(userId);
    await expect(recoveries.retryRecovery(userId)).rejects.toThrow(/its recovery has already ended \(COMPLETED\); only a parked run takes retry/);
  });
});
