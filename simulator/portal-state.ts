import { createHash, randomBytes } from 'node:crypto';
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
  /**
   * The custodian backup share, a JSON string. Portal-Managed: Portal keeps it. Self-Managed: it
   * exists only until the delivery to the company's webhook is over (Portal keeps no copy), unless
   * the simulator runs with `retainCustodianShares` (an in-process test oracle). No route serves it.
   */
  custodianShare?: string;
  custodian: SimCustodianState;
  /** How many times a store request and a mark request touched this pair. */
  storeCount: number;
  markCount: number;
}

export interface SimCustodianState {
  /** The environment's mode when the pair was made: where Portal looks for the custodian half at recovery. */
  mode: 'portal-managed' | 'self-managed';
  /** SHA-256 (hex) of the custodian share: recognises it later without keeping it. */
  sha256: string;
  /**
   * Self-Managed: `delivered` once the webhook answered 200 to `POST /backup`; `failed` if that
   * call failed; `not-sent` if an earlier failure stopped the backup before it.
   */
  delivery: 'not-applicable' | 'pending' | 'not-sent' | 'delivered' | 'failed';
  deliveredAt?: string;
  /** `POST /backup/fetch` returned it, exactly as delivered, right after the deliveries. */
  validated: boolean;
}

export interface SimSigningPair {
  id: string;
  curve: Curve;
  status: 'incomplete' | 'completed';
  createdAt: string;
  /** The signing share handed out with it (the simulator keeps it to check `/v1/backup` callers). */
  share: string;
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

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
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
        const id = cuid();
        const pair: SimSigningPair = { id, curve: wallet.curve, status: 'completed', createdAt: new Date().toISOString(), share: this.signingShare(id, wallet) };
        wallet.signingSharePairs.push(pair);
        return [wallet.curve, { id: pair.id, share: pair.share }];
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

  /**
   * `/v1/backup`: one new incomplete pair per curve, each with its client share (returned) and its
   * custodian share (kept here; in Self-Managed mode, for the delivery to the webhook).
   */
  createBackupPairs(
    client: SimClient,
    options: { selfManaged?: boolean; backupMethod?: string } = {},
  ): Record<Curve, { id: string; share: string }> {
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
        // A JSON string, like Portal's ("the custodian backup share as a JSON string"); the pair id
        // inside it under the same name as in the client share, for webhooks that take it from there.
        const custodianShare = JSON.stringify({
          backupSharePairId: id,
          curve: wallet.curve,
          publicKey: wallet.publicKey,
          custodianShare: randomBytes(32).toString('hex'),
        });
        wallet.backupSharePairs.push({
          id,
          curve: wallet.curve,
          status: 'incomplete',
          backupMethod: options.backupMethod ?? 'UNKNOWN',
          createdAt,
          share,
          custodianShare,
          custodian: {
            mode: options.selfManaged ? 'self-managed' : 'portal-managed',
            sha256: sha256Hex(custodianShare),
            delivery: options.selfManaged ? 'pending' : 'not-applicable',
            validated: false,
          },
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

  /**
   * The signing shares `/v1/backup` accepts: each wallet's newest completed signing pair. After a
   * recovery whose new pairs were marked STORED_CLIENT, those replace the ones before.
   */
  currentSigningShares(client: SimClient): Record<Curve, { id: string; share: string }> | undefined {
    const entries = client.wallets.map((wallet) => {
      const completed = wallet.signingSharePairs.filter((pair) => pair.status === 'completed');
      const current = completed[completed.length - 1];
      return current ? ([wallet.curve, { id: current.id, share: current.share }] as const) : undefined;
    });
    if (entries.some((entry) => entry === undefined)) return undefined;
    return Object.fromEntries(entries as (readonly [Curve, { id: string; share: string }])[]) as Record<Curve, { id: string; share: string }>;
  }

  /** `/v1/recover`: new signing shares for every wallet. */
  createSigningShares(client: SimClient): Record<Curve, { id: string; share: string }> {
    return Object.fromEntries(
      client.wallets.map((wallet) => {
        const id = cuid();
        const pair: SimSigningPair = { id, curve: wallet.curve, status: 'incomplete', createdAt: new Date().toISOString(), share: this.signingShare(id, wallet) };
        wallet.signingSharePairs.push(pair);
        return [wallet.curve, { id: pair.id, share: pair.share }];
      }),
    ) as Record<Curve, { id: string; share: string }>;
  }

  /** The client object of `GET /api/v3/clients/me`; `backupWithPortalEnabled` false in Self-Managed mode. */
  clientView(client: SimClient, environment: { backupWithPortalEnabled: boolean } = { backupWithPortalEnabled: true }) {
    return {
      id: client.clientId,
      custodian: { id: 'custodian-sim', name: 'Simulated custodian' },
      environment: { id: 'env-sim', name: 'simulator', backupWithPortalEnabled: environment.backupWithPortalEnabled },
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

  /** The admin API's view of a client: the whole state, less the custodian shares themselves. */
  adminView(client: SimClient) {
    return {
      ...client,
      wallets: client.wallets.map((wallet) => ({
        ...wallet,
        signingSharePairs: wallet.signingSharePairs.map(({ share: _share, ...pair }) => pair),
        backupSharePairs: wallet.backupSharePairs.map(({ custodianShare: _custodianShare, ...pair }) => ({
          ...pair,
          custodian: { ...pair.custodian, delivered: pair.custodian.delivery === 'delivered' },
        })),
      })),
    };
  }

  reset(): void {
    this.byUserId.clear();
    this.byApiKey.clear();
  }
}
