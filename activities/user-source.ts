import axios, { type AxiosInstance } from 'axios';
import { Context } from '@temporalio/activity';
import { z } from 'zod';
import { BatchSourceNotAllowedError, UserSourceRefusedError, UserSourceUnavailableError } from '../domain/errors';
import { parseUserId } from '../domain/user-id';
import { isTransientHttpStatus } from '../adapters/http/http-status';
import { describeZodError } from '../adapters/http/response-validation';

export interface UserSourceDeps {
  http?: AxiosInstance;
  authHeader?: { name: string; value: string };
  /**
   * Origins a paged user source may be fetched from. The URL comes from workflow input, the
   * credential header from the worker: without this list, whoever starts a batch could send the
   * header anywhere.
   */
  allowedSourceOrigins: string[];
}

export interface UserPageRequest {
  url: string;
  cursor?: string;
  limit: number;
}

export interface UserPage {
  userIds: string[];
  nextCursor?: string;
}

const pageSchema = z.object({
  userIds: z.array(z.string()),
  nextCursor: z.string().min(1).nullable().optional(),
});

/**
 * The company backend's paged user list, `GET url?cursor=…&limit=…`, as the fleet runs read it
 * (batch, drill and rotation pages, the rotation's census). A refusal (4xx, an unusable page) is
 * UserSourceRefusedError, which pauses a fleet run; a failure that may pass is
 * UserSourceUnavailableError. Ids that could never be a user are dropped: each would fail anyway.
 */
export function userSourcePages(deps: UserSourceDeps): (input: UserPageRequest) => Promise<UserPage> {
  const http = deps.http ?? axios.create({ timeout: 30_000, maxRedirects: 0 });
  return async (input) => {
    const origin = URL.canParse(input.url) ? new URL(input.url).origin : undefined;
    if (!origin || !deps.allowedSourceOrigins.includes(origin)) {
      throw new BatchSourceNotAllowedError(
        `the user source ${origin ?? 'URL'} is not an allowed origin for this worker (allowed: ${deps.allowedSourceOrigins.join(', ') || 'none'}); ` +
          "add it to the workers' BATCH_SOURCE_ALLOWED_ORIGINS, or use a list source",
      );
    }
    let data: unknown;
    try {
      const params = { limit: input.limit, ...(input.cursor ? { cursor: input.cursor } : {}) };
      const headers = deps.authHeader ? { [deps.authHeader.name]: deps.authHeader.value } : {};
      data = (await http.get(input.url, { params, headers })).data;
    } catch (error) {
      const status = (error as { response?: { status?: number } }).response?.status;
      if (!isTransientHttpStatus(status)) {
        throw new UserSourceRefusedError(`the user source ${input.url} refused the page request with ${status}`);
      }
      throw new UserSourceUnavailableError(`the user source ${input.url} failed (${status ?? 'network error'}); will retry`);
    }
    if (typeof data === 'string' && data.trim().length > 0) {
      throw new UserSourceUnavailableError(`the user source ${input.url} answered with a body that is not JSON; will retry`);
    }
    const parsed = pageSchema.safeParse(data);
    if (!parsed.success) {
      throw new UserSourceRefusedError(`the user source returned an unusable page: ${describeZodError(parsed.error)}`);
    }
    const userIds = parsed.data.userIds.filter((id) => {
      try {
        parseUserId(id);
        return true;
      } catch {
        Context.current().log.warn('user source returned an invalid user id; skipped', { length: id.length });
        return false;
      }
    });
    return { userIds, ...(parsed.data.nextCursor ? { nextCursor: parsed.data.nextCursor } : {}) };
  };
}
