import { PortalNotFoundError, PortalRequestRejectedError } from '../domain/errors';

/**
 * Marks pairs at Portal (backup pairs at MARK, signing pairs at MARK_SIGNING), idempotently: a
 * retry after a lost answer may find them marked already, and a Portal that refuses to mark a
 * completed pair again must not park a finished run. A refusal (rejected, not found) therefore
 * passes when Portal lists every pair as completed; otherwise it stands.
 */
export async function markIdempotently(ids: string[], mark: () => Promise<unknown>, pairs: () => Promise<{ id: string; status: string }[]>): Promise<void> {
  try {
    await mark();
  } catch (error) {
    if (!(error instanceof PortalRequestRejectedError || error instanceof PortalNotFoundError)) throw error;
    const completed = new Set((await pairs()).filter((pair) => pair.status.toLowerCase() === 'completed').map((pair) => pair.id));
    if (!ids.every((id) => completed.has(id))) throw error;
  }
}
