import type { Curve } from '../../domain/curves';
import { CiphertextConflictError, CiphertextNotFoundError, PortalNotFoundError } from '../../domain/errors';
import type { CiphertextStore, PutOptions, PutResult, ReplaceOutcome, StoreContext, StoredCiphertext } from './ciphertext-store';
import type { CredentialsSource } from '../credentials/credentials-source';
import type { PortalClient } from '../portal/portal-client';

/**
 * Portal-Managed backups: the ciphertext is stored at Portal, per backup share pair, with the
 * user's client API key (loaded here from the credentials source; the step never sees it).
 * Portal's route overwrites, so write-once is checked here: on a retried attempt the pair may
 * already hold a ciphertext, which is read first.
 */
export class PortalCiphertextStore implements CiphertextStore {
  readonly kind = 'portal';

  constructor(
    private readonly portal: PortalClient,
    private readonly credentials: CredentialsSource,
  ) {}

  async put(context: StoreContext, ciphertexts: StoredCiphertext[], options: PutOptions): Promise<PutResult> {
    const { clientApiKey } = await this.credentials.load(context.userId);
    // The pairs are independent: their writes (and write-once checks) go out together.
    const stored = await Promise.all(
      ciphertexts.map(async ({ pairId, ciphertext }) => {
        if (!options.freshPairs) {
          const existing = await this.read(clientApiKey, pairId);
          if (existing === ciphertext) return pairId;
          if (existing !== undefined) {
            throw new CiphertextConflictError(`pair ${pairId} already holds a different ciphertext at Portal; it was not overwritten`);
          }
        }
        await this.portal.storeCipherText(clientApiKey, pairId, ciphertext);
        return undefined;
      }),
    );
    return { alreadyStored: stored.filter((pairId): pairId is string => pairId !== undefined) };
  }

  /**
   * Key rotation: Portal's ciphertext route overwrites, so the pair is read first and written only
   * if it still holds `expectedOld`. Not atomic: a writer between the read and the write would be
   * overwritten. Nothing else writes a pair that holds a ciphertext (backups are write-once and
   * the rotation defers users whose pre-rotation backup still runs), so the window only ever sees
   * the rotation itself, whose writes are of the same plaintext.
   */
  async replace(context: StoreContext, next: StoredCiphertext, expectedOld: string): Promise<ReplaceOutcome> {
    const { clientApiKey } = await this.credentials.load(context.userId);
    const existing = await this.read(clientApiKey, next.pairId);
    if (existing === undefined) return 'absent';
    if (existing === next.ciphertext) return 'replaced';
    if (existing !== expectedOld) return 'changed';
    await this.portal.storeCipherText(clientApiKey, next.pairId, next.ciphertext);
    return 'replaced';
  }

  async get(context: StoreContext, pairId: string, _curve: Curve): Promise<string> {
    const { clientApiKey } = await this.credentials.load(context.userId);
    const stored = await this.read(clientApiKey, pairId);
    if (stored === undefined) throw new CiphertextNotFoundError(`Portal has no ciphertext for pair ${pairId} (404)`);
    return stored;
  }

  private async read(clientApiKey: string, pairId: string): Promise<string | undefined> {
    try {
      return await this.portal.getCipherText(clientApiKey, pairId);
    } catch (error) {
      if (error instanceof PortalNotFoundError) return undefined;
      throw error;
    }
  }
}
