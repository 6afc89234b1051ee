import { HttpCredentialsSource } from '../adapters/credentials/credentials-source';
import { PortalClient } from '../adapters/portal/portal-client';
import { transitContext } from '../adapters/kms/transit-context';
import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import { VaultTransit } from '../adapters/vault/vault-transit';
import { sharePlaintext } from '../activities';
import { CURVES } from '../domain/curves';
import { windowed, type WindowedRun } from './windowed';

export interface BaselineEndpoints {
  portalUrl: string;
  vaultAddr: string;
  vaultToken: string;
  credentialsUrl: string;
}

/**
 * The plain script of Portal's guide, for comparison: per user, load credentials, `/v1/backup`,
 * encrypt both shares (one Transit batch, as ours), store both ciphertexts, mark the pairs. No
 * orchestration, no read-back verification, no retries: what a crash between steps loses, it loses.
 */
export async function runBaselineScript(
  userIds: string[],
  concurrency: number,
  endpoints: BaselineEndpoints,
): Promise<WindowedRun> {
  const portal = new PortalClient({
    enclaveUrl: endpoints.portalUrl,
    apiUrl: endpoints.portalUrl,
    timeoutMs: 30_000,
    storeCipherTextMethod: 'POST',
    maxResponseBytes: 1024 * 1024,
  });
  const transit = new VaultTransit(
    { endpoint: endpoints.vaultAddr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 30_000 },
    new StaticTokenAuth(endpoints.vaultToken),
  );
  const credentials = new HttpCredentialsSource({ urlTemplate: endpoints.credentialsUrl, timeoutMs: 30_000 });

  const backupOne = async (userId: string) => {
    const { clientApiKey, generateResponse } = await credentials.load(userId);
    const shares = await portal.backup(clientApiKey, generateResponse);
    const ciphertexts = await transit.encryptBatch(
      CURVES.map((curve) => ({ plaintext: sharePlaintext(shares[curve]), context: transitContext(userId, shares[curve].id) })),
    );
    await Promise.all(CURVES.map((curve, i) => portal.storeCipherText(clientApiKey, shares[curve].id, ciphertexts[i]!)));
    await portal.markBackupPairsStored(clientApiKey, CURVES.map((curve) => shares[curve].id));
  };

  return windowed(userIds.length, concurrency, (i) => backupOne(userIds[i]!));
}
