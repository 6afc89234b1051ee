/**
 * The derived-key context that binds a ciphertext to its user and backup share pair: a ciphertext
 * moved to another user or pair does not decrypt. A context (not associated data) because Transit's
 * rewrap, which key rotation needs, accepts a context but no associated data.
 */
export function transitContext(userId: string, pairId: string): string {
  return Buffer.from(`mpc-backup/v1|user=${userId}|pair=${pairId}`, 'utf8').toString('base64');
}

/**
 * The context of a custodian share held by the Self-Managed webhook: bound to Portal's client id
 * and the pair, under a prefix of its own, so it never decrypts as a client backup share's
 * ciphertext and cannot be moved to another client or pair.
 */
export function custodianShareContext(clientId: string, pairId: string): string {
  return Buffer.from(`mpc-backup/custodian-share/v1|client=${clientId}|pair=${pairId}`, 'utf8').toString('base64');
}

/**
 * The parts of a context: its purpose (`mpc-backup/v1`, `mpc-backup/custodian-share/v1`) and its
 * named fields (`user`, `pair`, or `client`, `pair`). Providers that take the binding as
 * key-value pairs (an AWS KMS encryption context) use this; throws on anything that is not a
 * context made here.
 */
export function contextParts(context: string): { purpose: string; fields: Record<string, string> } {
  const text = Buffer.from(context, 'base64').toString('utf8');
  const [purpose, ...rest] = text.split('|');
  const fields: Record<string, string> = {};
  for (const part of rest) {
    const separator = part.indexOf('=');
    if (separator <= 0) throw new Error('a binding context must look like <purpose>|<name>=<value>|…');
    fields[part.slice(0, separator)] = part.slice(separator + 1);
  }
  if (!purpose || !purpose.startsWith('mpc-backup/') || Object.keys(fields).length === 0 || Buffer.from(text, 'utf8').toString('base64') !== context) {
    throw new Error('a binding context must be one made by transit-context.ts');
  }
  return { purpose, fields };
}
