import type { SimClient } from '../simulator/portal-state';

/**
 * Every secret the simulator holds for a user, in each form it could leak in: base64 shares as
 * issued, the inner share material after decoding, signing shares, the generate response, the key.
 */
export function secretsOf(client: SimClient): string[] {
  const secrets = new Set<string>([client.apiKey, client.generateResponse]);
  const addShare = (base64: string) => {
    secrets.add(base64);
    const inner = JSON.parse(Buffer.from(base64, 'base64').toString('utf8')) as { share: string };
    secrets.add(inner.share);
  };
  const generate = JSON.parse(client.generateResponse) as Record<string, { share: string }>;
  for (const entry of Object.values(generate)) addShare(entry.share);
  for (const wallet of client.wallets) for (const pair of wallet.backupSharePairs) addShare(pair.share);
  return [...secrets];
}

/**
 * All text a structure carries: its strings, and each byte array read as UTF-8 and as base64, so
 * a secret inside a payload's bytes is found in either encoding.
 */
export function textsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) {
    const buffer = Buffer.from(value);
    out.push(buffer.toString('utf8'), buffer.toString('base64'));
  } else if (Array.isArray(value)) for (const item of value) textsIn(item, out);
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      out.push(key);
      textsIn(item, out);
    }
  }
  return out;
}

export function leaksIn(haystacks: string[], secrets: string[]): string[] {
  return secrets.filter((secret) => haystacks.some((text) => text.includes(secret)));
}
