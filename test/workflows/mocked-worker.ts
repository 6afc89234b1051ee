/**
 * Workflow-level tests with mocked activities: the workflows run as in production (the suite's
 * workflow bundle, on the suite's Temporal dev server through TestWorkflowEnvironment), each test
 * on a worker of its own task queue whose activities the test writes. The time-skipping test server
 * is a download this sandbox cannot fetch; the dev server is already up for the suite.
 */
import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { afterAll, afterEach, beforeAll, inject } from 'vitest';
import { backupDataConverter } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { currentRun } from '../../activities/backup/backup-receipts';
import { createReceiptCheckActivities } from '../../activities/receipt-checks';
import { createAuditActivities } from '../../activities/audit/audit-activities';
import { StepReceipts } from '../../activities/step-receipts';
import type { BackupActivities } from '../../activities';
import { pairClaims, type ReceiptClaims, type ReceiptStep } from '../../domain/step-receipt';
import type { VerifyOperatorActionInput } from '../../activities/approvals/approval-activities';
import type { ActionToSign, OperatorSigner } from '../../client/operator-signer';
import { rotationStartKind, type RotateKeysInput } from '../../contracts/rotate-keys-api';
import { requireActionFor, statementText, type OperatorActionKind, type SignedOperatorAction } from '../../domain/operator-action';

export const EventType = temporal.api.enums.v1.EventType;

export async function testEnvironment(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createFromExistingServer({
    address: inject('temporalAddress'),
    client: { dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })) },
  });
}

/** The workers' receipts: steps whose receipts the workflow checks itself (MARK, DRILL_VERDICT) get real ones. */
const receipts = new StepReceipts({ activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) });

/** A real receipt of `step` for the calling activity's run (checked by the workflow's local activity). */
/**
 * One test file's time-skipping environment and the workers its tests start: the environment is
 * made before the file's tests and torn down after; each test's `stops` (workers, gates) run after it.
 */
export function workflowTestSuite(): { readonly env: TestWorkflowEnvironment; readonly stops: (() => Promise<void>)[] } {
  let env: TestWorkflowEnvironment | undefined;
  const stops: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    env = await testEnvironment();
  });
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });
  afterAll(async () => {
    await env?.teardown();
  });
  return {
    get env() {
      if (!env) throw new Error('the workflow test environment is made in beforeAll: use it inside a test');
      return env;
    },
    stops,
  };
}

export function realReceipt(step: ReceiptStep, claims: ReceiptClaims) {
  return receipts.issue(step, currentRun(), claims);
}

/** A receipt of the right shape (the next activity would check its MAC; mocked ones do not). */
export function shapedReceipt(step: string) {
  return { receipt: { step, keyId: 's1', mac: '0'.repeat(64) } };
}

/** A permanent activity failure (parks a step after the point of no return). */
export function permanent(type: string, message = `${type} (mocked)`) {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

export interface MockedWorker {
  taskQueue: string;
  /** Stops the worker (activities still running are released by the test first). */
  stop(): Promise<void>;
}

/** A worker of a new task queue (or of `taskQueue`) running the suite's workflow bundle with these activities. */
export async function mockedWorker(env: TestWorkflowEnvironment, activities: object, taskQueue = `mocked-${randomBytes(4).toString('hex')}`): Promise<MockedWorker> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }), { worker: true }),
    // The audit trail's activity without a database (records nothing) and mocked operator signatures; a test may pass its own.
    activities: { ...createReceiptCheckActivities(receipts), ...createAuditActivities({ heartbeatIntervalMs: 2_000, receipts }), verifyOperatorAction: approvalActivities().verifyOperatorAction, ...activities },
  });
  const running = worker.run();
  let stopped = false;
  return {
    taskQueue,
    async stop() {
      if (stopped) return;
      stopped = true;
      worker.shutdown();
      await running;
    },
  };
}

/** A promise the test resolves: an activity waits on it to stay in flight until the test lets it go. */
export function gate(): { wait: Promise<void>; open: () => void; entered: Promise<void>; enter: () => void } {
  let open!: () => void;
  let enter!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  const entered = new Promise<void>((resolve) => (enter = resolve));
  return { wait, open, entered, enter };
}

/** Polls `check` until it returns a value (no fixed sleep decides a test: only the deadline does). */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The events of a run's history (of this run only; pass the runId for an earlier run). */
export async function historyEvents(handle: WorkflowHandle) {
  return (await handle.fetchHistory()).events ?? [];
}

/** Milliseconds of an event's time. */
export function eventMs(event: temporal.api.history.v1.IHistoryEvent): number {
  const time = event.eventTime!;
  return Number(time.seconds) * 1000 + Math.floor((time.nanos ?? 0) / 1e6);
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export const PAIRS = { SECP256K1: 'p1', ED25519: 'p2' };
type BackupStepName = 'MPC_BACKUP' | 'ENCRYPT' | 'STORE' | 'MARK';

/**
 * Backup activities that succeed, except: `failStore` permanent failures of STORE first, and the
 * step `holdAt` waits (in flight) until the test opens the `held` gate (for `holdUser` only, if
 * given). `calls` lists the steps called, `users` the users whose MPC_BACKUP ran.
 */
export function backupActivities(options: { failStore?: number; holdAt?: BackupStepName; held?: ReturnType<typeof gate>; holdUser?: string } = {}) {
  const calls: string[] = [];
  const users: string[] = [];
  let storeFailures = options.failStore ?? 0;
  const step = async <T>(name: BackupStepName, userId: string, result: () => T): Promise<T> => {
    calls.push(name);
    if (options.holdAt === name && (options.holdUser === undefined || options.holdUser === userId)) {
      options.held!.enter();
      await options.held!.wait;
    }
    return result();
  };
  const activities: Partial<BackupActivities> = {
    mpcBackup: ({ userId }) => {
      users.push(userId);
      return step('MPC_BACKUP', userId, () => ({ sealedShares: { keyId: 's1', data: 'sealed' }, pairIds: PAIRS, orphanedPairIds: [] }) as never);
    },
    encryptShares: ({ userId }) => step('ENCRYPT', userId, () => ({ ...shapedReceipt('ENCRYPT') }) as never),
    storeCiphertexts: ({ userId }) =>
      step('STORE', userId, () => {
        if (storeFailures-- > 0) throw permanent('CiphertextVerificationError');
        return shapedReceipt('STORE') as never;
      }),
    markPairsStored: ({ userId }) => step('MARK', userId, () => ({ receipt: realReceipt('MARK', pairClaims(userId, PAIRS)) })),
    findOrphanedPairs: async () => [],
  };
  return { activities, calls, users };
}

/**
 * Mocked approval activities (activities/approvals/): a "signature" is `vault:v1:<base64 of the
 * signer's name>`, so a statement claiming someone else's name fails as a real one would. Local
 * activities, as in production. `required: 0` lets tests about other steps skip the wait.
 */
export function approvalActivities(options: { required?: number; ttlMs?: number; approvers?: string[] } = {}) {
  const approvers = options.approvers ?? ['ops-alice', 'ops-bob'];
  return {
    recoveryApprovalPolicy: async () => ({ required: options.required ?? 0, ttlMs: options.ttlMs ?? 60_000 }),
    verifyOperatorAction: async (input: VerifyOperatorActionInput) => {
      const statement = requireActionFor(input.action, input.expected);
      const signer = Buffer.from(input.action.signature.replace(/^vault:v1:/, ''), 'base64').toString('utf8');
      if (signer !== statement.operator) throw ApplicationFailure.create({ type: 'OperatorNotVerifiedError', message: `the signature is not ${statement.operator}'s`, nonRetryable: true });
      if (input.mustBeApprover && !approvers.includes(signer)) throw ApplicationFailure.create({ type: 'OperatorNotApproverError', message: `${signer} is not an approver`, nonRetryable: true });
      return { operator: signer, via: statement.via };
    },
  };
}

/** A client-side signer whose mocked signature approvalActivities' verifyOperatorAction takes as `signedBy`'s (default the operator). */
export function mockSigner(operator: string, signedBy = operator): OperatorSigner {
  return { operator, sign: async (action: ActionToSign) => mockSigned({ ...action, operator }, signedBy) };
}

/** A fleet run's control signed by `operator` (default a verified non-approver) for the run's current run id. */
export async function signedControl(handle: WorkflowHandle, control: 'pause' | 'resume' | 'cancel', options: { operator?: string; signedBy?: string; reason?: string } = {}) {
  const { runId } = await handle.describe();
  const reason = options.reason !== undefined ? { reason: options.reason } : {};
  return { action: mockSigned({ kind: `fleet-${control}`, workflowId: handle.workflowId, runId, operator: options.operator ?? 'ops-mallory', ...reason }, options.signedBy), ...reason };
}

/** Starts a key rotation (its own workflow id) with a start signed by `operator` (default an approver of approvalActivities). */
export function startRotation(env: TestWorkflowEnvironment, taskQueue: string, input: RotateKeysInput, operator = 'ops-alice') {
  const workflowId = uniqueId('rotate');
  const request = mockSigned({ kind: rotationStartKind(input.raiseMinDecryptionVersion), workflowId, operator });
  return env.client.workflow.start('rotateKeys', { taskQueue, workflowId, args: [{ ...input, request }] });
}

/** A mocked signed action of `kind` by `operator` (signed as `signedBy`, default the operator). */
export function mockSigned(action: { kind: OperatorActionKind; workflowId: string; runId?: string; userId?: string; operator: string; reason?: string; recipient?: string }, signedBy = action.operator): SignedOperatorAction {
  const statement = statementText({ v: 1, via: 'operator', issuedAt: new Date().toISOString(), nonce: randomBytes(4).toString('hex'), ...action });
  return { statement, signature: `vault:v1:${Buffer.from(signedBy).toString('base64')}` };
}
