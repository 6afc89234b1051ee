import { z } from 'zod';
import type { CodecKeyRing } from '../codec/encryption-codec';

const KEY_ENTRY = /^([A-Za-z0-9._-]{1,64}):([A-Za-z0-9+/]{43}=)$/;

/**
 * PAYLOAD_CODEC_KEYS: comma-separated `keyId:base64key` entries (32-byte keys, e.g. from
 * `openssl rand -base64 32`); PAYLOAD_CODEC_ACTIVE_KEY_ID picks the one that encrypts (default:
 * the first). Older keys stay in the list so old history stays readable.
 */
export const codecEnvSchema = z.object({
  PAYLOAD_CODEC_KEYS: z
    .string({ error: 'is required: comma-separated keyId:base64(32 bytes) entries' })
    .trim()
    .refine(
      (value) => value.split(',').every((entry) => KEY_ENTRY.test(entry.trim())),
      'must be comma-separated keyId:base64key entries, each key 32 bytes (44 base64 characters)',
    ),
  PAYLOAD_CODEC_ACTIVE_KEY_ID: z.string().trim().min(1).optional(),
});

export type CodecEnv = z.infer<typeof codecEnvSchema>;

export function codecEnvProblems(env: CodecEnv): string[] {
  const ids = env.PAYLOAD_CODEC_KEYS.split(',').map((entry) => entry.trim().split(':')[0]);
  const problems: string[] = [];
  if (new Set(ids).size !== ids.length) problems.push('PAYLOAD_CODEC_KEYS: key ids must be unique');
  if (env.PAYLOAD_CODEC_ACTIVE_KEY_ID && !ids.includes(env.PAYLOAD_CODEC_ACTIVE_KEY_ID)) {
    problems.push(`PAYLOAD_CODEC_ACTIVE_KEY_ID: "${env.PAYLOAD_CODEC_ACTIVE_KEY_ID}" is not a key id in PAYLOAD_CODEC_KEYS`);
  }
  return problems;
}

export function toCodecKeyRing(env: CodecEnv): CodecKeyRing {
  const keys = new Map<string, Buffer>();
  for (const entry of env.PAYLOAD_CODEC_KEYS.split(',')) {
    const [, id, key] = KEY_ENTRY.exec(entry.trim())!;
    keys.set(id!, Buffer.from(key!, 'base64'));
  }
  return { activeKeyId: env.PAYLOAD_CODEC_ACTIVE_KEY_ID ?? keys.keys().next().value!, keys };
}
