import type { SimClient } from '../simulator/portal-state';

/**
 * Every secret the simulator holds for a user, in each form it could leak in: base64 shares as
 * issued, the inner share material after decoding, signing shares, the generate response, the key,
 * and the custodian shares it still holds (Portal-Managed; Self-Managed with
 * `retainCustodianShares`): the JSON string as Portal sent it, its base64, and its inner hex.
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
  for (const wallet of client.wallets) {
    // Signing shares, including those a recovery made (and any made by a recovery call whose answer was lost).
    for (const pair of wallet.signingSharePairs) addShare(pair.share);
    for (const pair of wallet.backupSharePairs) {
      addShare(pair.share);
      if (pair.custodianShare !== undefined) for (const form of custodianShareForms(pair.custodianShare)) secrets.add(form);
    }
  }
  return [...secrets];
}

/** A custodian share (a JSON string) in the forms it could leak in: as sent, base64, the inner share material. */
export function custodianShareForms(share: string): string[] {
  const forms = [share, Buffer.from(share, 'utf8').toString('base64')];
  try {
    const inner = (JSON.parse(share) as { custodianShare?: unknown }).custodianShare;
    if (typeof inner === 'string' && inner.length >= 16) forms.push(inner);
  } catch {
    // Not JSON: the string itself is the secret.
  }
  return forms;
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
