import { z } from 'zod';
import type { CodecKeyRing } from '../codec/encryption-codec';
import { keyRingProblems, keyRingVariable, toKeyRing } from './key-ring-config';

/**
 * PAYLOAD_CODEC_KEYS: the payload codec's key ring, held by workers, clients, the CLI and the codec
 * server; PAYLOAD_CODEC_ACTIVE_KEY_ID picks the one that encrypts. Older keys stay in the list so
 * old history stays readable.
 */
export const codecEnvSchema = z.object({
  PAYLOAD_CODEC_KEYS: keyRingVariable(),
  PAYLOAD_CODEC_ACTIVE_KEY_ID: z.string().trim().min(1).optional(),
});

export type CodecEnv = z.infer<typeof codecEnvSchema>;

export function codecEnvProblems(env: CodecEnv): string[] {
  return keyRingProblems('PAYLOAD_CODEC_KEYS', 'PAYLOAD_CODEC_ACTIVE_KEY_ID', env.PAYLOAD_CODEC_KEYS, env.PAYLOAD_CODEC_ACTIVE_KEY_ID);
}

export function toCodecKeyRing(env: CodecEnv): CodecKeyRing {
  return toKeyRing(env.PAYLOAD_CODEC_KEYS, env.PAYLOAD_CODEC_ACTIVE_KEY_ID);
}
