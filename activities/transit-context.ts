/**
 * The derived-key context that binds a ciphertext to its user and backup share pair: a ciphertext
 * moved to another user or pair does not decrypt. A context (not associated data) because Transit's
 * rewrap, which key rotation needs, accepts a context but no associated data.
 */
export function transitContext(userId: string, pairId: string): string {
  return Buffer.from(`mpc-backup/v1|user=${userId}|pair=${pairId}`, 'utf8').toString('base64');
}
