import type { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import type { Curve } from '../../domain/curves';
import { CiphertextConflictError, CiphertextNotFoundError } from '../../domain/errors';
import type { CiphertextStore, PutOptions, PutResult, ReplaceOutcome, StoreContext, StoredCiphertext } from './ciphertext-store';

/**
 * The company's own PostgreSQL (table client_ciphertexts, keyed by user and pair). Write-once is
 * the database's: one statement inserts or reports what is there, so no check is skipped even on
 * a first attempt. Database failures arrive classified (DatabaseUnavailableError is retried).
 */
export class PostgresCiphertextStore implements CiphertextStore {
  readonly kind = 'postgres';

  constructor(private readonly repository: ClientCiphertextRepository) {}

  async put(context: StoreContext, ciphertexts: StoredCiphertext[], _options: PutOptions): Promise<PutResult> {
    const alreadyStored: string[] = [];
    for (const { pairId, ciphertext } of ciphertexts) {
      const outcome = await this.repository.putOnce(context.userId, pairId, ciphertext);
      if (outcome === 'conflict') {
        throw new CiphertextConflictError(`the database already holds a different ciphertext for pair ${pairId} of user ${context.userId}; it was not overwritten`);
      }
      if (outcome === 'unchanged') alreadyStored.push(pairId);
    }
    return { alreadyStored };
  }

  /** Key rotation: one compare-and-set statement (replaceIfUnchanged); a concurrent change is never overwritten. */
  async replace(context: StoreContext, next: StoredCiphertext, expectedOld: string): Promise<ReplaceOutcome> {
    if (await this.repository.replaceIfUnchanged(context.userId, next.pairId, expectedOld, next.ciphertext)) return 'replaced';
    const stored = await this.repository.get(context.userId, next.pairId);
    if (stored === undefined) return 'absent';
    return stored === next.ciphertext ? 'replaced' : 'changed';
  }

  async get(context: StoreContext, pairId: string, _curve: Curve): Promise<string> {
    const stored = await this.repository.get(context.userId, pairId);
    if (stored === undefined) throw new CiphertextNotFoundError(`the database has no ciphertext for pair ${pairId} of user ${context.userId}`);
    return stored;
  }
}
