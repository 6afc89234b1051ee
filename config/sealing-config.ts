import { z } from 'zod';
import type { KeyRing } from '../codec/key-ring';
import { keyRingProblems, keyRingVariable, toKeyRing } from './key-ring-config';

/**
 * SHARE_SEALING_KEYS: the workers' own key ring, which seals backup shares while they sit in
 * workflow history. Only workers hold it: never give it to clients, the CLI or the codec server.
 * SHARE_SEALING_ACTIVE_KEY_ID picks the key that seals; keep retired keys listed until no running
 * backup holds shares sealed with them (parked backups can live for weeks).
 */
export const sealingEnvSchema = z.object({
  SHARE_SEALING_KEYS: keyRingVariable(),
  SHARE_SEALING_ACTIVE_KEY_ID: z.string().trim().min(1).optional(),
});

export type SealingEnv = z.infer<typeof sealingEnvSchema>;

/** `codecKeys` are the payload codec's entries: a sealing key equal to one of them would seal nothing. */
export function sealingEnvProblems(env: SealingEnv, codecKeys?: string): string[] {
  const problems = keyRingProblems('SHARE_SEALING_KEYS', 'SHARE_SEALING_ACTIVE_KEY_ID', env.SHARE_SEALING_KEYS, env.SHARE_SEALING_ACTIVE_KEY_ID);
  if (codecKeys) {
    const keyOf = (entry: string) => entry.trim().split(':')[1];
    const codec = new Set(codecKeys.split(',').map(keyOf));
    if (env.SHARE_SEALING_KEYS.split(',').some((entry) => codec.has(keyOf(entry)))) {
      problems.push('SHARE_SEALING_KEYS must not reuse a key of PAYLOAD_CODEC_KEYS: clients hold those, so they would open sealed shares');
    }
  }
  return problems;
}

export function toSealingKeyRing(env: SealingEnv): KeyRing {
  return toKeyRing(env.SHARE_SEALING_KEYS, env.SHARE_SEALING_ACTIVE_KEY_ID);
}
