import { z } from 'zod';
import type { KeyRing } from '../codec/key-ring';

const KEY_ENTRY = /^([A-Za-z0-9._-]{1,64}):([A-Za-z0-9+/]{43}=)$/;

/**
 * A key ring in one variable: comma-separated `keyId:base64key` entries (32-byte keys, e.g. from
 * `openssl rand -base64 32`), plus an optional variable naming the active id (default: the first).
 */
export function keyRingVariable() {
  return z
    .string({ error: 'is required: comma-separated keyId:base64(32 bytes) entries' })
    .trim()
    .refine(
      (value) => value.split(',').every((entry) => KEY_ENTRY.test(entry.trim())),
      'must be comma-separated keyId:base64key entries, each key 32 bytes (44 base64 characters)',
    );
}

export function keyRingProblems(name: string, activeName: string, entries: string, active: string | undefined): string[] {
  const ids = entries.split(',').map((entry) => entry.trim().split(':')[0]);
  const problems: string[] = [];
  if (new Set(ids).size !== ids.length) problems.push(`${name}: key ids must be unique`);
  if (active && !ids.includes(active)) problems.push(`${activeName}: "${active}" is not a key id in ${name}`);
  return problems;
}

export function toKeyRing(entries: string, active: string | undefined): KeyRing {
  const keys = new Map<string, Buffer>();
  for (const entry of entries.split(',')) {
    const [, id, key] = KEY_ENTRY.exec(entry.trim())!;
    keys.set(id!, Buffer.from(key!, 'base64'));
  }
  return { activeKeyId: active ?? keys.keys().next().value!, keys };
}
