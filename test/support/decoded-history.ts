import type { temporal } from '@temporalio/proto';
import { inject } from 'vitest';
import { EncryptionCodec } from '../../codec/encryption-codec';
import { toCodecKeyRing } from '../../config/codec-config';
import { textsIn } from '../../chaos/secret-scan';

/** Every text of a raw history's payloads, decoded with the clients' codec key (what anyone holding it can read). */
export async function decodedTexts(history: unknown): Promise<string[]> {
  const codec = new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') }));
  const payloads: temporal.api.common.v1.IPayload[] = [];
  const collect = (value: unknown) => {
    if (!value || typeof value !== 'object') return;
    const record = value as Record<string, unknown>;
    if (record.metadata && record.data instanceof Uint8Array) payloads.push(record as temporal.api.common.v1.IPayload);
    else for (const item of Object.values(record)) collect(item);
  };
  collect(history);
  return textsIn(await codec.decode(payloads));
}
