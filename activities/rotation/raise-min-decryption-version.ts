import { Context } from '@temporalio/activity';
import { VaultRequestError } from '../../domain/errors';
import { currentRun } from '../backup/backup-receipts';
import type { KeyRotationDeps } from './key-rotation-deps';
import { raiseClaims } from './raise-check';

/**
 * Raises min_decryption_version to `version`, only with this run's RAISE_CHECK receipt (never above
 * the latest version; a no-op when it is there already). A check completed from outside (or a
 * rotation started before checks carried receipts) raises nothing, and the rotation reports why.
 */
export async function raiseMinDecryptionVersion(
  deps: KeyRotationDeps,
  input: { rotationId: string; version: number; check?: unknown },
): Promise<{ minDecryptionVersion: number }> {
  deps.receipts.verify('RAISE_CHECK', currentRun(), raiseClaims(input.rotationId, input.version), input.check);
  const key = await deps.transit.keyVersions();
  if (input.version > key.latestVersion) {
    throw new VaultRequestError(`min_decryption_version ${input.version} would be above the key's latest version ${key.latestVersion}`);
  }
  if (key.minDecryptionVersion >= input.version) return { minDecryptionVersion: key.minDecryptionVersion };
  const after = await deps.transit.setMinDecryptionVersion(input.version);
  Context.current().log.info('Transit key min_decryption_version raised', { rotationId: input.rotationId, from: key.minDecryptionVersion, to: after.minDecryptionVersion });
  return { minDecryptionVersion: after.minDecryptionVersion };
}
