import { z } from 'zod';
import { aesGcmOpen, aesGcmSeal } from '../codec/aes-gcm';
import { checkKeyRing, type KeyRing } from '../codec/key-ring';
import type { BackupShares, SealedShares } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import { SealedSharesError } from '../domain/errors';

const sharesSchema = z.object(
  Object.fromEntries(CURVES.map((curve) => [curve, z.object({ id: z.string().min(1), share: z.string().min(1) })])) as Record<
    (typeof CURVES)[number],
    z.ZodObject<{ id: z.ZodString; share: z.ZodString }>
  >,
);

/** Binds a sealed box to its user, so shares sealed for one backup cannot be fed to another's. */
function associatedData(userId: string): Buffer {
  return Buffer.from(`mpc-backup/sealed-shares/v1|user=${userId}`, 'utf8');
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

  seal(userId: string, shares: BackupShares): SealedShares {
    const plain = Buffer.from(JSON.stringify(shares), 'utf8');
    const key = this.ring.keys.get(this.ring.activeKeyId)!;
    return { keyId: this.ring.activeKeyId, data: aesGcmSeal(key, plain, associatedData(userId)).toString('base64') };
  }

  unseal(userId: string, sealed: SealedShares): BackupShares {
    const key = this.ring.keys.get(sealed?.keyId);
    if (!key) {
      throw new SealedSharesError(
        `the backup shares were sealed with key "${String(sealed?.keyId)}", which is not in SHARE_SEALING_KEYS: ` +
          'add that key back to the workers (keep retired sealing keys until no running backup uses them), then retry',
      );
    }
    let plain: Buffer;
    try {
      plain = aesGcmOpen(key, Buffer.from(sealed.data, 'base64'), associatedData(userId));
    } catch {
      throw new SealedSharesError(`the sealed backup shares of user ${userId} do not open with key "${sealed.keyId}": they were altered or sealed for another user`);
    }
    const parsed = sharesSchema.safeParse(JSON.parse(plain.toString('utf8')));
    if (!parsed.success) throw new SealedSharesError(`the sealed backup shares of user ${userId} are not a /v1/backup response`);
    return Object.fromEntries(CURVES.map((curve) => [curve, { id: parsed.data[curve].id, share: parsed.data[curve].share }])) as BackupShares;
  }
}
