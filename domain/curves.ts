/** The curves Portal's `/v1/backup` returns one backup share pair for, in response order. */
export const CURVES = ['SECP256K1', 'ED25519'] as const;
export type Curve = (typeof CURVES)[number];
