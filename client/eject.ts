import { readFileSync, rmSync } from 'node:fs';
import { z } from 'zod';
import { openSealed, SealedReleaseError } from '../adapters/sealing/recipient-seal';
import { ejectReleaseKid } from '../contracts/eject-shares-api';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { EjectReleases, type EjectRelease } from '../db/eject-releases';
import type { BackupPairIds, BackupShares } from '../domain/backup-types';
import { parseUserId } from '../domain/user-id';
import { ClientError } from './client-error';
import { loadEjectCollectConfig, type EjectCollectConfig } from './eject-config';
import { writeNewPrivateFile } from './eject-client';

/** What the collected file holds: exactly the `/v1/backup` response Portal returned for these pairs, for Portal's eject libraries. */
export interface CollectedEject {
  userId: string;
  pairIds: BackupPairIds;
  /** The store whose copy the workers released. */
  store: string;
  backupResponse: BackupShares;
  requestedBy: string;
  approvedBy: string[];
  releasedAt: string;
}

/** A collect that cannot be done (nothing released, already collected, expired, a key file for another release); the message says what to do. */
export class EjectCollectRefusedError extends ClientError {
  override readonly name = 'EjectCollectRefusedError';
  readonly kind = 'refused';
}

const keyFileSchema = z.object({ v: z.literal(1), userId: z.string(), workflowId: z.string(), publicKey: z.string(), privateJwk: z.record(z.string(), z.unknown()) });
const sealedSchema = z.object({ userId: z.string(), pairIds: z.record(z.string(), z.string()), backupResponse: z.record(z.string(), z.object({ id: z.string(), share: z.string() })) });

/**
 * `eject collect`: opens the user's newest release with the requester's key file (written by `eject
 * request`), writes the shares to a new owner-only file, then empties the release (it can be
 * collected once) and deletes the key file (it opens nothing any more). Prints ids only.
 */
export async function collectEject(rawUserId: string, files: { key: string; out: string }, config: EjectCollectConfig = loadEjectCollectConfig()): Promise<Omit<CollectedEject, 'backupResponse'> & { writtenTo: string }> {
  const userId = parseUserId(rawUserId);
  const key = readKeyFile(files.key, userId);
  const pool = createDatabasePool(config.databaseUrl);
  try {
    await migrate(pool);
    const releases = new EjectReleases(pool);
    const release = requireCollectable(userId, await releases.newestForUser(userId));
    const collected = await opened(release, key.privateJwk);
    writeNewPrivateFile(files.out, `${JSON.stringify(collected, null, 2)}\n`);
    await releases.markCollected(release.workflowId, release.runId);
    rmSync(files.key, { force: true });
    const { backupResponse: _shares, ...ids } = collected;
    return { ...ids, writtenTo: files.out };
  } finally {
    await pool.end();
  }
}

function readKeyFile(path: string, userId: string) {
  let parsed;
  try {
    parsed = keyFileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (error) {
    throw new EjectCollectRefusedError(`cannot read the key file ${path} (${(error as Error).message}): give the file \`eject request --key-out\` wrote`);
  }
  if (!parsed.success) throw new EjectCollectRefusedError(`${path} is not a key file written by \`eject request\``);
  if (parsed.data.userId !== userId) throw new EjectCollectRefusedError(`${path} is the key of an eject of user ${parsed.data.userId}, not ${userId}`);
  return parsed.data;
}

function requireCollectable(userId: string, release: EjectRelease | undefined): EjectRelease & { sealed: string } {
  if (!release) throw new EjectCollectRefusedError(`nothing was released for user ${userId}: see \`eject status ${userId}\` (it waits for approvals, or ended without a release)`);
  if (release.collectedAt) throw new EjectCollectRefusedError(`the release of user ${userId} (${release.workflowId}) was already collected at ${release.collectedAt.toISOString()}: request a new eject`);
  if (!release.sealed || release.expiresAt.getTime() < Date.now()) throw new EjectCollectRefusedError(`the release of user ${userId} expired at ${release.expiresAt.toISOString()}: request a new eject`);
  return release as EjectRelease & { sealed: string };
}

async function opened(release: EjectRelease & { sealed: string }, privateJwk: Record<string, unknown>): Promise<CollectedEject> {
  let plaintext: Uint8Array | undefined;
  try {
    plaintext = await openSealed(release.sealed, privateJwk, ejectReleaseKid(release.workflowId, release.runId));
    const body = sealedSchema.parse(JSON.parse(Buffer.from(plaintext).toString('utf8')));
    if (body.userId !== release.userId) throw new SealedReleaseError(`the release names user ${body.userId}, not ${release.userId}`);
    return {
      userId: body.userId,
      pairIds: body.pairIds as BackupPairIds,
      store: release.store,
      backupResponse: body.backupResponse as BackupShares,
      requestedBy: release.requestedBy,
      approvedBy: release.approvedBy,
      releasedAt: release.releasedAt.toISOString(),
    };
  } catch (error) {
    if (error instanceof SealedReleaseError) throw new EjectCollectRefusedError(`the newest release of user ${release.userId} (${release.workflowId}): ${error.message}`);
    throw error;
  } finally {
    plaintext?.fill(0);
  }
}
