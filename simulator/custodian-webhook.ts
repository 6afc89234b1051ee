import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Curve } from '../domain/curves';
import type { FaultInjector, FaultRule, WebhookFaultKind, WebhookRouteName } from './fault-rules';

/** Portal's budget for each call to the webhook ("Answer 200 … within 10 seconds"). */
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
/** The most the simulator reads of a webhook's answer (fetch returns every share held for a client). */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/** Oldest call records are dropped beyond this, so a long campaign does not grow without bound. */
const MAX_RECORDS = 100_000;

/** Self-Managed Backups: where and how Portal reaches the company's custodian-share webhook. */
export const selfManagedSchema = z.strictObject({
  /** Base URL: the simulator calls `{webhookUrl}/backup` and `{webhookUrl}/backup/fetch`. */
  webhookUrl: z
    .url({ protocol: /^https?$/ })
    // Refinements run even when the URL check failed: an unparsable URL is left to that check.
    .refine((url) => {
      const parsed = URL.canParse(url) ? new URL(url) : undefined;
      return parsed === undefined || (parsed.username === '' && parsed.password === '');
    }, 'no user or password in the URL (fetch refuses them; the secret header is the authentication)'),
  /** Sent as `X-Webhook-Secret`; never shown by the admin API nor logged. */
  webhookSecret: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[\x20-\x7e]+$/, 'printable ASCII only: it travels in a header'),
  /** Budget of each call to the webhook, ms; Portal's is 10 s. */
  timeoutMs: z.number().int().min(1).max(120_000).optional(),
});
export type SelfManagedOptions = z.input<typeof selfManagedSchema>;

export interface WebhookSettings {
  webhookUrl: string;
  webhookSecret: string;
  timeoutMs: number;
  backupMethod: string;
  acceptWebhook204: boolean;
}

/** One call the simulator made (or, with an outcome fault, pretended to make) to the webhook. Never a share. */
export interface WebhookCallRecord {
  /** When the call started (ISO 8601). */
  at: string;
  /** `backup`: `POST {webhookUrl}/backup`; `fetch`: `POST {webhookUrl}/backup/fetch`. */
  call: 'backup' | 'fetch';
  /** What the call was part of: a `/v1/backup` or a `/v1/recover`. */
  purpose: 'backup' | 'recover';
  userId: string;
  clientId: string;
  /** Delivery: the pair whose custodian share it carried. */
  pairId?: string;
  curve?: Curve;
  backupMethod?: string;
  /** Fetch: the pairs whose custodian shares it had to return. */
  pairIds?: string[];
  outcome: 'ok' | 'failed';
  /** The webhook's HTTP status, when it answered. */
  status?: number;
  /** Why it failed: `ECONNREFUSED`, `timeout after 1000 ms`, `status 500`, `share of pair … missing`, … */
  error?: string;
  durationMs: number;
  /** Fault kinds injected into this call. */
  faults?: WebhookFaultKind[];
  /** The second sending of a `webhook-duplicate` delivery. */
  duplicate?: boolean;
}

export interface CustodianDelivery {
  pairId: string;
  curve: Curve;
  share: string;
}

type Context = { userId: string; clientId: string };
type Sent = { status: number; text: string } | { status?: number; error: string };
type WebhookFault = FaultRule & { kind: WebhookFaultKind };

class AnswerTooLarge extends Error {}

/** The simulator's side of Self-Managed Backups: Portal calling the company's webhook. */
export class CustodianWebhook {
  readonly records: WebhookCallRecord[] = [];
  private readonly closing = new AbortController();

  constructor(
    private readonly faults: FaultInjector,
    /** Requests actually sent, counted per route like the simulator's own. */
    private readonly calls: Record<string, number>,
  ) {}

  /**
   * Delivers the custodian shares one by one, in curve order, and stops at the first failure (no
   * retry: Portal documents none). `onDelivered` runs as soon as the webhook acknowledged a share.
   */
  async deliver(
    settings: WebhookSettings,
    context: Context,
    deliveries: CustodianDelivery[],
    onDelivered: (pairId: string) => void,
  ): Promise<{ ok: true } | { ok: false; failedPairId: string }> {
    for (const delivery of deliveries) {
      const faults = this.faults.webhook('webhookDelivery', context.userId);
      const kinds = new Set(faults.map((fault) => fault.kind));
      const body: Record<string, unknown> = {
        clientId: context.clientId,
        backupMethod: settings.backupMethod,
        share: delivery.share,
        backupSharePairId: delivery.pairId,
      };
      if (kinds.has('webhook-omit-pair-id')) delete body.backupSharePairId;
      const record = { call: 'backup', purpose: 'backup', pairId: delivery.pairId, curve: delivery.curve, backupMethod: settings.backupMethod } as const;
      const times = kinds.has('webhook-duplicate') ? 2 : 1;
      for (let i = 0; i < times; i++) {
        const { sent, pending } = await this.send(settings, 'webhookDelivery', '/backup', body, context, faults, record, i > 0);
        const accepted = 'error' in sent ? false : sent.status === 200 || (settings.acceptWebhook204 && sent.status === 204);
        this.finish(pending, sent, accepted ? undefined : `status ${sent.status}`);
        if (!accepted) return { ok: false, failedPairId: delivery.pairId };
      }
      onDelivered(delivery.pairId);
    }
    return { ok: true };
  }

  /**
   * `POST {webhookUrl}/backup/fetch`: every custodian share the webhook holds for the client, exactly
   * as received. `check` says what is wrong with them (e.g. a share missing), or nothing.
   */
  async fetchShares(
    settings: WebhookSettings,
    context: Context,
    purpose: 'backup' | 'recover',
    pairIds: string[],
    check: (shares: string[]) => string | undefined,
  ): Promise<{ ok: true; shares: string[] } | { ok: false }> {
    const faults = this.faults.webhook('webhookFetch', context.userId);
    const record = { call: 'fetch', purpose, pairIds } as const;
    const body = { clientId: context.clientId };
    const { sent, pending } = await this.send(settings, 'webhookFetch', '/backup/fetch', body, context, faults, record, false);
    if ('error' in sent) {
      this.finish(pending, sent);
      return { ok: false };
    }
    if (sent.status !== 200) {
      this.finish(pending, sent, `status ${sent.status}`);
      return { ok: false };
    }
    const shares = parseBackupShares(sent.text);
    const problem = shares ? check(shares) : 'answer is not {"backupShares": [string, …]}';
    this.finish(pending, sent, problem);
    return shares && !problem ? { ok: true, shares } : { ok: false };
  }

  /** Aborts every call in flight (the simulator is closing). */
  close(): void {
    this.closing.abort();
  }

  /** Makes one call, applying its faults; its record stays pending until `finish`. */
  private async send(
    settings: WebhookSettings,
    route: WebhookRouteName,
    path: '/backup' | '/backup/fetch',
    body: Record<string, unknown>,
    context: Context,
    faults: WebhookFault[],
    fields: Partial<WebhookCallRecord> & Pick<WebhookCallRecord, 'call' | 'purpose'>,
    duplicate: boolean,
  ): Promise<{ sent: Sent; pending: WebhookCallRecord }> {
    const kinds = new Set(faults.map((fault) => fault.kind));
    const started = Date.now();
    const pending: WebhookCallRecord = {
      at: new Date(started).toISOString(),
      ...fields,
      userId: context.userId,
      clientId: context.clientId,
      outcome: 'failed',
      durationMs: 0,
      ...(faults.length > 0 ? { faults: faults.map((fault) => fault.kind) } : {}),
      ...(duplicate ? { duplicate } : {}),
    };
    const ruleOf = (kind: WebhookFaultKind) => faults.find((fault) => fault.kind === kind);

    // As if the webhook failed: nothing is sent.
    if (kinds.has('webhook-refused')) return { pending, sent: { error: 'ECONNREFUSED (injected)' } };
    const injectedStatus = ruleOf('webhook-status');
    if (injectedStatus) {
      const status = injectedStatus.status ?? 500;
      return { pending, sent: { status, error: `status ${status} (injected)` } };
    }
    const injectedTimeout = ruleOf('webhook-timeout');
    if (injectedTimeout) {
      const waitMs = Math.min(injectedTimeout.latencyMs ?? settings.timeoutMs, settings.timeoutMs);
      await sleep(waitMs, undefined, { signal: this.closing.signal }).catch(() => undefined);
      return { pending, sent: { error: `timeout after ${waitMs} ms (injected)` } };
    }

    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (kinds.has('webhook-wrong-secret')) headers['x-webhook-secret'] = `wrong-${randomBytes(8).toString('hex')}`;
    else if (!kinds.has('webhook-missing-secret')) headers['x-webhook-secret'] = settings.webhookSecret;
    const malformed = ruleOf('webhook-malformed');
    const payload = malformed
      ? malformedBody(malformed.body, context.clientId)
      : JSON.stringify(body);

    this.calls[route] = (this.calls[route] ?? 0) + 1;
    const sent = await post(joinUrl(settings.webhookUrl, path), headers, payload, settings.timeoutMs, this.closing.signal);
    if (kinds.has('webhook-lost-response')) {
      const status = sent.status;
      return { pending, sent: { ...(status !== undefined ? { status } : {}), error: 'answer ignored (injected lost response)' } };
    }
    return { pending, sent };
  }

  /** Completes a call's record (ok unless the call failed or `problem` says why not) and keeps it. */
  private finish(record: WebhookCallRecord, sent: Sent, problem?: string): void {
    record.durationMs = Date.now() - Date.parse(record.at);
    if (sent.status !== undefined) record.status = sent.status;
    const error = 'error' in sent ? sent.error : problem;
    if (error === undefined) record.outcome = 'ok';
    else record.error = error;
    this.records.push(record);
    if (this.records.length > MAX_RECORDS) this.records.splice(0, this.records.length - MAX_RECORDS);
  }
}

/** One POST within the budget (connect, headers and body), no redirects followed, answer size bounded. */
async function post(url: string, headers: Record<string, string>, body: string, timeoutMs: number, closing: AbortSignal): Promise<Sent> {
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), closing]);
  try {
    // redirect 'manual': a 3xx is a failure, and the secret never follows a redirect to another host.
    const response = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal });
    return { status: response.status, text: await readCapped(response, MAX_ANSWER_BYTES) };
  } catch (error) {
    return { error: describeFailure(error, timeoutMs) };
  }
}

async function readCapped(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new AnswerTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A short reason: a code when there is one; never anything of the request body or headers. */
function describeFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof AnswerTooLarge) return `answer larger than ${MAX_ANSWER_BYTES} bytes`;
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return `timeout after ${timeoutMs} ms`;
    if (error.name === 'AbortError') return 'aborted (simulator closing)';
    const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
    if (typeof cause?.code === 'string') return cause.code;
    // e.g. undici's "bad port": its own words, short (the URL holds no credentials, the schema refuses them).
    if (typeof cause?.message === 'string') return `${error.name}: ${cause.message.slice(0, 200)}`;
    return error.name;
  }
  return 'unknown error';
}

function malformedBody(body: unknown, clientId: string): string {
  if (body === undefined) return `{"clientId": ${JSON.stringify(clientId)}, "backupMethod": `;
  return typeof body === 'string' ? body : JSON.stringify(body);
}

function parseBackupShares(text: string): string[] | undefined {
  try {
    const parsed = JSON.parse(text) as { backupShares?: unknown } | null;
    const shares = parsed?.backupShares;
    return Array.isArray(shares) && shares.every((share) => typeof share === 'string') ? shares : undefined;
  } catch {
    return undefined;
  }
}

function joinUrl(base: string, path: string): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  return url.toString();
}

/** The settings as the admin API shows them: never the secret. */
export function describeSettings(settings: WebhookSettings | undefined) {
  if (!settings) return null;
  return {
    webhookUrl: new URL(settings.webhookUrl).toString(),
    timeoutMs: settings.timeoutMs,
    backupMethod: settings.backupMethod,
    acceptWebhook204: settings.acceptWebhook204,
  };
}
