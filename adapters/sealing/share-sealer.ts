import { z } from 'zod';
import { aesGcmOpen, aesGcmSeal } from '../../codec/aes-gcm';
import { checkKeyRing, type KeyRing } from '../../codec/key-ring';
import type { BackupShares, SealedShares } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { SealedSharesError } from '../../domain/errors';

const sharesSchema = z.object(
  Object.fromEntries(CURVES.map((curve) => [curve, z.object({ id: z.string().min(1), share: z.string().min(1) })])) as Record<
    (typeof CURVES)[number],
    z.ZodObject<{ id: z.ZodString; share: z.ZodString }>
  >,
);

/**
 * What a sealed box holds: backup shares (a `/v1/backup` response) or, during a recovery, the new
 * signing shares (a `/v1/recover` response). Both have the same shape; the purpose keeps one from
 * being opened as the other.
 */
export type SealedPurpose = 'backup-shares' | 'signing-shares';

/** Binds a sealed box to its user and purpose, so shares sealed for one user cannot be fed to another's. */
function associatedData(userId: string, purpose: SealedPurpose): Buffer {
  // The backup-shares label predates purposes: unchanged, so boxes sealed before still open.
  const label = purpose === 'backup-shares' ? 'sealed-shares' : 'sealed-signing-shares';
  return Buffer.from(`mpc-backup/${label}/v1|user=${userId}`, 'utf8');
}

/**
 * Seals backup shares with a key ring only workers hold (SHARE_SEALING_KEYS), between step 1 and
 * step 2, while they travel through workflow history. The payload codec's key, which clients,
 * the CLI and the codec server also hold, then opens only this opaque box, never a share.
 */
export class ShareSealer {
  constructor(private readonly ring: KeyRing) {
    checkKeyRing(ring, 'share sealing');
  }

  seal(userId: string, shares: BackupShares, purpose: SealedPurpose = 'backup-shares'): SealedShares {
    const plain = Buffer.from(JSON.stringify(shares), 'utf8');
    const key = this.ring.keys.get(this.ring.activeKeyId)!;
    return { keyId: this.ring.activeKeyId, data: aesGcmSeal(key, plain, associatedData(userId, purpose)).toString('base64') };
  }

  unseal(userId: string, sealed: SealedShares, purpose: SealedPurpose = 'backup-shares'): BackupShares {
    const noun = purpose === 'backup-shares' ? 'backup shares' : 'signing shares';
    const key = this.ring.keys.get(sealed?.keyId);
    if (!key) {
      throw new SealedSharesError(
        `the ${noun} were sealed with key "${String(sealed?.keyId)}", which is not in SHARE_SEALING_KEYS: ` +
          'add that key back to the workers (keep retired sealing keys until no running backup or recovery uses them), then retry',
      );
    }
    let plain: Buffer;
    try {
      plain = aesGcmOpen(key, Buffer.from(sealed.data, 'base64'), associatedData(userId, purpose));
    } catch {
      throw new SealedSharesError(`the sealed ${noun} of user ${userId} do not open with key "${sealed.keyId}": they were altered or sealed for another user`);
    }
    const parsed = sharesSchema.safeParse(JSON.parse(plain.toString('utf8')));
    if (!parsed.success) throw new SealedSharesError(`the sealed ${noun} of user ${userId} are not a /v1/${purpose === 'backup-shares' ? 'backup' : 'recover'} response`);
    return Object.fromEntries(CURVES.map((curve) => [curve, { id: parsed.data[curve].id, share: parsed.data[curve].share }])) as BackupShares;
  }
}
