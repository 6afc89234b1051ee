import { Context } from '@temporalio/activity';
import type { RewrapUsersInput, RewrapUsersResult } from '../../contracts/rotate-keys-api';
import type { KeyRotationDeps } from './key-rotation-deps';
import { checkBeforeRaise, type RaiseCheck, type RaiseCheckInput } from './raise-check';
import { raiseMinDecryptionVersion } from './raise-min-decryption-version';
import { resumedCheckpoint } from './rewrap-checkpoint';
import { rewrapUsers } from './rewrap-users';
import { checkpointedBoundary, plainBoundary } from './rotation-boundary';
import { readTransitKey, rotateTransitKey, type TransitKeyState } from './transit-key';

export type { KeyRotationDeps } from './key-rotation-deps';
export type { RaiseCheck, RaiseCheckInput } from './raise-check';
export type { TransitKeyState } from './transit-key';

/**
 * The activities of key rotation (workflows/rotate-keys.ts), one file per step as for backups:
 * read and rotate the key (transit-key.ts), rewrap every ciphertext of a few users at a time
 * (rewrap-users.ts, rewrap-ciphertext.ts), check (raise-check.ts) and raise min_decryption_version
 * (raise-min-decryption-version.ts); the census is rotation-census.ts. Each runs inside the
 * rotation's boundary (rotation-boundary.ts); what leaves an activity is versions, counts, ids
 * and reasons, never a plaintext.
 */
export function createKeyRotationActivities(deps: KeyRotationDeps) {
  const boundary = <T>(body: () => Promise<T>) => plainBoundary(deps.heartbeatIntervalMs, body);
  return {
    readTransitKey: (): Promise<TransitKeyState> => boundary(() => readTransitKey(deps)),
    rotateTransitKey: (input: { rotationId: string; expectedLatestVersion: number }) => boundary(() => rotateTransitKey(deps, input)),
    /**
     * Rewraps every ciphertext of a few users to `targetVersion` and verifies each; resumes at the
     * ciphertext it was on after a retry (its checkpoint travels in the heartbeats).
     */
    rewrapUsers: (input: RewrapUsersInput): Promise<RewrapUsersResult> => {
      const checkpoint = resumedCheckpoint(Context.current().info.heartbeatDetails as unknown, input);
      const moved = (): void => {
        checkpoint.progressAtMs = Date.now();
        Context.current().heartbeat(checkpoint);
      };
      return checkpointedBoundary(deps.heartbeatIntervalMs, () => checkpoint, () => rewrapUsers(deps, input, checkpoint, moved));
    },
    checkBeforeRaise: (input: RaiseCheckInput): Promise<RaiseCheck> => boundary(() => checkBeforeRaise(deps, input)),
    raiseMinDecryptionVersion: (input: { rotationId: string; version: number; check?: unknown }) => boundary(() => raiseMinDecryptionVersion(deps, input)),
  };
}

export type KeyRotationActivities = ReturnType<typeof createKeyRotationActivities>;
