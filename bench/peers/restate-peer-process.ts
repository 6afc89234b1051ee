import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, waitUntil, type ManagedProcess } from '../../stack/managed-process';
import { peerProcessEnv, type PeerBackupResult, type PeerTargets } from './peer-steps';
import { RESTATE_PEER } from './restate-backup';

const ROOT = join(__dirname, '..', '..');

/** What the Restate peer's service process runs against, where it listens, and where it counts step attempts. */
export interface RestatePeerSetup extends PeerTargets {
  /** The port of the service endpoint (kept across a restart: the deployment registered names it). */
  servicePort: number;
  attemptsFile: string;
  logFile: string;
}

export class RestateInvocationError extends Error {
  override readonly name = 'RestateInvocationError';
}

/** The service process (bench/peers/restate-peer-main.ts); resolves once it listens. A second start on the same port serves the invocations the server retries. */
export async function startRestatePeer(setup: RestatePeerSetup, sealingKey = `peer-1:${randomBytes(32).toString('base64')}`): Promise<ManagedProcess> {
  const child = startProcess('restate-peer', process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'peers', 'restate-peer-main.ts')], {
    logFile: setup.logFile,
    cwd: ROOT,
    env: {
      ...peerProcessEnv(setup, sealingKey),
      RESTATE_SERVICE_PORT: String(setup.servicePort),
      RESTATE_PEER_ATTEMPTS_FILE: setup.attemptsFile,
      RESTATE_LOGGING: 'WARN',
    },
  });
  const ready = async () => existsSync(child.logFile) && readFileSync(child.logFile, 'utf8').includes(`restate peer ready on port ${setup.servicePort}`);
  await waitUntil('the Restate peer', ready, 120_000, child.exited);
  return child;
}

/** The service endpoint's address as the server reaches it (the deployment's uri). */
export const restatePeerUri = (servicePort: number) => `http://127.0.0.1:${servicePort}`;

const workflowPath = (userId: string) => `${RESTATE_PEER.workflowName}/${encodeURIComponent(userId)}`;

async function answer<T>(response: Response, what: string): Promise<T> {
  if (!response.ok) throw new RestateInvocationError(`${what}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** One user's backup, started and awaited in one call (what a backend that waits sees). */
export async function callRestateBackup(ingressUrl: string, userId: string): Promise<PeerBackupResult> {
  const response = await fetch(`${ingressUrl}/${workflowPath(userId)}/${RESTATE_PEER.handler}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(userId) });
  return answer(response, `backup of ${userId}`);
}

/** Starts one user's backup and returns at once (the server has it durably). */
export async function sendRestateBackup(ingressUrl: string, userId: string): Promise<void> {
  const response = await fetch(`${ingressUrl}/${workflowPath(userId)}/${RESTATE_PEER.handler}/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(userId) });
  await answer(response, `sending the backup of ${userId}`);
}

/** Waits for the result of a backup started before (however long it takes, through restarts of the service). */
export async function attachRestateBackup(ingressUrl: string, userId: string): Promise<PeerBackupResult> {
  const response = await fetch(`${ingressUrl}/restate/workflow/${workflowPath(userId)}/attach`);
  return answer(response, `the result of the backup of ${userId}`);
}
