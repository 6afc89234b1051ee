/**
 * What a write-once insert found:
 * - `inserted`: the row was new and is now committed;
 * - `unchanged`: the same value was already stored (a repeated delivery or a retried step);
 * - `conflict`: a different value is stored for that key; it was kept, nothing was overwritten.
 */
export type PutOnceOutcome = 'inserted' | 'unchanged' | 'conflict';

export const PUT_ONCE_OUTCOMES = ['inserted', 'unchanged', 'conflict'] as const satisfies readonly PutOnceOutcome[];
