import { randomBytes } from 'node:crypto';
import { CURVES, type Curve } from '../domain/curves';

export interface SimBackupPair {
  id: string;
  curve: Curve;
  status: 'incomplete' | 'completed';
  backupMethod: string;
  createdAt: string;
  /** The base64 share Portal handed out (the simulator keeps it to verify recovery). */
  share: string;
  clientCipherText?: string;
  /** How many times a store request and a mark request touched this pair. */
  storeCount: number;
  markCount: number;
}

export interface SimSigningPair {
  id: string;
  curve: Curve;
  status: 'incomplete' | 'completed';
  createdAt: string;
}

export interface SimWallet {
  id: string;
  curve: Curve;
  publicKey: string;
  backupSharePairs: SimBackupPair[];
  signingSharePairs: SimSigningPair[];
}

export interface SimClient {
  userId: string;
  clientId: string;
  apiKey: string;
  /** A revoked key answers 401 until restored; the company's backend still hands it out. */
  apiKeyRevoked: boolean;
  /** The `/v1/generate` response the company's backend stored, as a JSON string. */
  generateResponse: string;
  wallets: SimWallet[];
  /** Each mark request, in order: the ids it named and the status it set. */
  markEvents: { at: string; status: string; pairIds: string[] }[];
}

function cuid(): string {
  return `c${Date.now().toString(36)}${randomBytes(8).toString('hex')}`;
}

function base64Json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}

/** Per-client state of the simulated Portal: clients, wallets, pairs, ciphertexts. */
export class PortalState {
  private readonly byUserId = new Map<string, SimClient>();
  private readonly byApiKey = new Map<string, SimClient>();

  seedUser(userId: string): SimClient {
    const existing = this.byUserId.get(userId);
    if (existing) return existing;
    const wallets: SimWallet[] = CURVES.map((curve) => ({
      id: cuid(),
      curve,
      publicKey: randomBytes(33).toString('hex'),
      backupSharePairs: [],
      signingSharePairs: [],
    }));
    const generate = Object.fromEntries(
      wallets.map((wallet) => {
        const pair: SimSigningPair = { id: cuid(), curve: wallet.curve, status: 'completed', createdAt: new Date().toISOString() };
        wallet.signingSharePairs.push(pair);
        return [wallet.curve, { id: pair.id, share: this.signingShare(pair.id, wallet) }];
      }),
    );
    const client: SimClient = {
      userId,
      clientId: cuid(),
      apiKey: `${randomBytes(4).toString('hex')}-${randomBytes(16).toString('hex')}`,
      apiKeyRevoked: false,
      generateResponse: JSON.stringify(generate),
      wallets,
      markEvents: [],
    };
    this.byUserId.set(userId, client);
    this.byApiKey.set(client.apiKey, client);
    return client;
  }

  private signingShare(pairId: string, wallet: SimWallet): string {
    return base64Json({ signingSharePairId: pairId, curve: wallet.curve, publicKey: wallet.publicKey, share: randomBytes(32).toString('hex') });
  }

  user(userId: string): SimClient | undefined {
    return this.byUserId.get(userId);
  }

  users(): SimClient[] {
    return [...this.byUserId.values()];
  }

  byKey(apiKey: string): SimClient | undefined {
    return this.byApiKey.get(apiKey);
  }

  /** Replaces the user's key with a new one; the old one stops working. */
  rotateKey(client: SimClient): void {
    this.byApiKey.delete(client.apiKey);
    client.apiKey = `${randomBytes(4).toString('hex')}-${randomBytes(16).toString('hex')}`;
    client.apiKeyRevoked = false;
    this.byApiKey.set(client.apiKey, client);
  }

  /** `/v1/backup`: one new incomplete pair per curve. */
  createBackupPairs(client: SimClient): Record<Curve, { id: string; share: string }> {
    const createdAt = new Date().toISOString();
    return Object.fromEntries(
      client.wallets.map((wallet) => {
        const id = cuid();
        const share = base64Json({
          backupSharePairId: id,
          curve: wallet.curve,
          publicKey: wallet.publicKey,
          share: randomBytes(32).toString('hex'),
          verifier: randomBytes(16).toString('hex'),
        });
        wallet.backupSharePairs.push({
          id,
          curve: wallet.curve,
          status: 'incomplete',
          backupMethod: 'UNKNOWN',
          createdAt,
          share,
          storeCount: 0,
          markCount: 0,
        });
        return [wallet.curve, { id, share }];
      }),
    ) as Record<Curve, { id: string; share: string }>;
  }

  findPair(client: SimClient, pairId: string): SimBackupPair | undefined {
    for (const wallet of client.wallets) {
      const pair = wallet.backupSharePairs.find((p) => p.id === pairId);
      if (pair) return pair;
    }
    return undefined;
  }

  /** `/v1/recover`: new signing shares for every wallet. */
  createSigningShares(client: SimClient): Record<Curve, { id: string; share: string }> {
    return Object.fromEntries(
      client.wallets.map((wallet) => {
        const pair: SimSigningPair = { id: cuid(), curve: wallet.curve, status: 'incomplete', createdAt: new Date().toISOString() };
        wallet.signingSharePairs.push(pair);
        return [wallet.curve, { id: pair.id, share: this.signingShare(pair.id, wallet) }];
      }),
    ) as Record<Curve, { id: string; share: string }>;
  }

  /** The client object of `GET /api/v3/clients/me`. */
  clientView(client: SimClient) {
    return {
      id: client.clientId,
      custodian: { id: 'custodian-sim', name: 'Simulated custodian' },
      environment: { id: 'env-sim', name: 'simulator', backupWithPortalEnabled: true },
      ejectedAt: null,
      wallets: client.wallets.map((wallet) => ({
        id: wallet.id,
        curve: wallet.curve,
        publicKey: wallet.publicKey,
        backupSharePairs: wallet.backupSharePairs.map((pair) => ({
          id: pair.id,
          backupMethod: pair.backupMethod,
          status: pair.status,
          createdAt: pair.createdAt,
        })),
        signingSharePairs: wallet.signingSharePairs.map((pair) => ({ id: pair.id, status: pair.status, createdAt: pair.createdAt })),
      })),
    };
  }

  reset(): void {
    this.byUserId.clear();
    this.byApiKey.clear();
  }
}
