import type { CiphertextStore, StoreContext } from './ciphertext-store';
import type { PortalClient } from './portal-client';

/** Portal-Managed backups: the ciphertext is stored at Portal, per backup share pair. */
export class PortalCiphertextStore implements CiphertextStore {
  readonly kind = 'portal';

  constructor(private readonly portal: PortalClient) {}

  put(context: StoreContext, pairId: string, ciphertext: string): Promise<void> {
    return this.portal.storeCipherText(context.clientApiKey, pairId, ciphertext);
  }

  get(context: StoreContext, pairId: string): Promise<string> {
    return this.portal.getCipherText(context.clientApiKey, pairId);
  }
}
