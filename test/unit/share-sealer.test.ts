import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ShareSealer } from '../../adapters/sealing/share-sealer';
import { EncryptionCodec } from '../../codec/encryption-codec';
import { defaultPayloadConverter } from '@temporalio/common';
import { SealedSharesError } from '../../domain/errors';
import type { BackupShares } from '../../domain/backup-types';

const shares: BackupShares = {
  SECP256K1: { id: 'pair-secp', share: Buffer.from('{"share":"secp-secret"}').toString('base64') },
  ED25519: { id: 'pair-ed', share: Buffer.from('{"share":"ed-secret"}').toString('base64') },
};
const ring = (id: string, key = randomBytes(32)) => ({ activeKeyId: id, keys: new Map([[id, key]]) });

describe('ShareSealer', () => {
  it('round-trips the /v1/backup response for the same user', () => {
    const sealer = new ShareSealer(ring('s1'));
    const sealed = sealer.seal('user-1', shares);
    expect(sealed.keyId).toBe('s1');
    expect(sealer.unseal('user-1', sealed)).toEqual(shares);
  });

  it('a payload codec key opens the payload but not the shares inside it', async () => {
    const sealer = new ShareSealer(ring('s1'));
    const codec = new EncryptionCodec(ring('c1'));
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload({ sealedShares: sealer.seal('user-1', shares) })]);
    const [decoded] = await codec.decode([encoded!]);
    const text = Buffer.from(decoded!.data!).toString('utf8');
    expect(text).toContain('sealedShares');
    for (const secret of [shares.SECP256K1.share, shares.ED25519.share, 'secp-secret', 'ed-secret']) expect(text).not.toContain(secret);
  });

  it('refuses a box sealed for another user, an altered box, and an unknown key id, with typed errors', () => {
    const sealer = new ShareSealer(ring('s1'));
    const sealed = sealer.seal('user-1', shares);
    expect(() => sealer.unseal('user-2', sealed)).toThrow(SealedSharesError);
    const altered = Buffer.from(sealed.data, 'base64');
    altered[20] = altered[20]! ^ 1;
    expect(() => sealer.unseal('user-1', { ...sealed, data: altered.toString('base64') })).toThrow(/altered or sealed for another user/);
    const rotated = new ShareSealer(ring('s2'));
    expect(() => rotated.unseal('user-1', sealed)).toThrow(/sealed with key "s1", which is not in SHARE_SEALING_KEYS/);
  });

  it('after a rotation, boxes sealed with the retired key still open', () => {
    const k1 = randomBytes(32);
    const before = new ShareSealer(ring('s1', k1));
    const after = new ShareSealer({ activeKeyId: 's2', keys: new Map([['s1', k1], ['s2', randomBytes(32)]]) });
    const old = before.seal('user-1', shares);
    expect(after.unseal('user-1', old)).toEqual(shares);
    expect(after.seal('user-1', shares).keyId).toBe('s2');
  });
});
