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
