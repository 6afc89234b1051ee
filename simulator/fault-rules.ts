import { z } from 'zod';
import { SeededRandom } from './seeded-random';

export const ROUTE_NAMES = [
  'backup',
  'storeCipherText',
  'getCipherText',
  'markPairs',
  'getClient',
  'recover',
  'markSigningPairs',
  'credentials',
  'signingShares',
  'listUsers',
  // Not routes of the simulator: the calls it makes to the company's webhook in Self-Managed mode.
  'webhookDelivery',
  'webhookFetch',
] as const;
export type RouteName = (typeof ROUTE_NAMES)[number];
export const WEBHOOK_ROUTES = ['webhookDelivery', 'webhookFetch'] as const;
export type WebhookRouteName = (typeof WEBHOOK_ROUTES)[number];

const HTTP_KINDS = ['status', 'rate-limit', 'html-error', 'latency', 'hang', 'lost-response', 'malformed'] as const;
/** Kinds that change what the simulator sends: the company's webhook sees them. */
const WEBHOOK_SENT_KINDS = ['webhook-wrong-secret', 'webhook-missing-secret', 'webhook-malformed'] as const;
/** Kinds that make the simulator act as if the webhook failed (nothing sent, or the answer ignored). */
const WEBHOOK_OUTCOME_KINDS = ['webhook-refused', 'webhook-timeout', 'webhook-status', 'webhook-lost-response'] as const;
/** Kinds that only make sense on a delivery (`POST {webhookUrl}/backup`). */
const WEBHOOK_DELIVERY_ONLY_KINDS = ['webhook-duplicate', 'webhook-omit-pair-id'] as const;
const WEBHOOK_KINDS = [...WEBHOOK_SENT_KINDS, ...WEBHOOK_OUTCOME_KINDS, ...WEBHOOK_DELIVERY_ONLY_KINDS] as const;
export type WebhookFaultKind = (typeof WEBHOOK_KINDS)[number];

/**
 * A fault, injected on one route (or all). Kinds:
 * - `status`: answer `status` (with Portal's flat error body unless `body` is given) instead of handling;
 * - `rate-limit`: 429, with `Retry-After: retryAfterSeconds` unless that is null;
 * - `html-error`: `status` (default 502) with an HTML page, as a proxy in front of Portal would;
 * - `latency`: wait `latencyMs`, then handle normally;
 * - `hang`: never answer (until the caller gives up, at most `latencyMs` or 5 minutes);
 * - `lost-response`: handle the request (the change is committed), then drop the connection;
 * - `malformed`: handle the request, then answer 200 with a truncated JSON body.
 *
 * Self-Managed mode: faults on the simulator's own calls to the company's webhook, on the routes
 * `webhookDelivery` (`POST {webhookUrl}/backup`, once per curve) and `webhookFetch`
 * (`POST {webhookUrl}/backup/fetch`, after the deliveries and on recovery). These routes take only
 * the `webhook-*` kinds, which no other route takes, and a `*` rule never reaches them.
 * What the webhook receives:
 * - `webhook-wrong-secret`: `X-Webhook-Secret` carries a wrong value;
 * - `webhook-missing-secret`: no `X-Webhook-Secret` header;
 * - `webhook-malformed`: the body is `body` (a string is sent as is, anything else as JSON), by
 *   default truncated JSON; still `Content-Type: application/json`;
 * - `webhook-duplicate` (delivery only): the same delivery is sent twice; both must answer 200;
 * - `webhook-omit-pair-id` (delivery only): the body lacks `backupSharePairId` (the documented body;
 *   the webhook must take the pair id from the share).
 * As if the webhook failed (for tests of the service, without a misbehaving webhook):
 * - `webhook-refused`: nothing is sent; the call fails as a refused connection;
 * - `webhook-timeout`: nothing is sent; the call fails as a timeout after `latencyMs` (default: the budget);
 * - `webhook-status`: nothing is sent; the call fails as if the webhook answered `status` (default 500);
 * - `webhook-lost-response`: sent normally, but the answer is ignored and the call fails (the webhook
 *   may well have stored the share: Portal never learns it).
 * Any of these failing makes `/v1/backup` (or `/v1/recover`) answer FAILED_WEBHOOK.
 * `probability` (default 1) and `count` (default unlimited) bound how often it fires.
 */
const faultRuleObject = z.object({
  route: z.union([z.enum(ROUTE_NAMES), z.literal('*')], { error: () => `must be one of ${[...ROUTE_NAMES, '*'].join(', ')}` }),
  kind: z.enum([...HTTP_KINDS, ...WEBHOOK_KINDS], { error: () => `must be one of ${[...HTTP_KINDS, ...WEBHOOK_KINDS].join(', ')}` }),
  userId: z.string().optional(),
  status: z.number().int().min(100).max(599).optional(),
  body: z.unknown().optional(),
  retryAfterSeconds: z.number().min(0).nullable().optional(),
  latencyMs: z.number().int().min(0).max(600_000).optional(),
  probability: z.number().min(0).max(1).default(1),
  count: z.number().int().min(1).optional(),
});
export const faultRuleSchema = faultRuleObject.superRefine((rule, context) => {
  const webhookKind = (WEBHOOK_KINDS as readonly string[]).includes(rule.kind);
  const webhookRoute = (WEBHOOK_ROUTES as readonly string[]).includes(rule.route);
  if (webhookKind && !webhookRoute) {
    context.addIssue({ code: 'custom', path: ['route'], message: `${rule.kind} applies only to the routes ${WEBHOOK_ROUTES.join(', ')}` });
  } else if (webhookRoute && !webhookKind) {
    context.addIssue({ code: 'custom', path: ['kind'], message: `${rule.route} takes only the webhook-* kinds` });
  } else if (rule.route === 'webhookFetch' && (WEBHOOK_DELIVERY_ONLY_KINDS as readonly string[]).includes(rule.kind)) {
    context.addIssue({ code: 'custom', path: ['kind'], message: `${rule.kind} applies only to webhookDelivery` });
  }
});
export type FaultRuleInput = z.input<typeof faultRuleSchema>;

/** A refused rule's problems, each as `field: what is allowed` (every problem at once). */
export function faultRuleProblems(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(rule)'}: ${issue.message}`).join('; ');
}
export type FaultRule = z.infer<typeof faultRuleSchema> & { id: number; fired: number };

const BEFORE_KINDS = new Set<string>(['status', 'rate-limit', 'html-error', 'latency', 'hang']);
const AFTER_KINDS = new Set<string>(['lost-response', 'malformed']);

function isWebhookKind(kind: string): kind is WebhookFaultKind {
  return (WEBHOOK_KINDS as readonly string[]).includes(kind);
}

function isWebhookRoute(route: RouteName): route is WebhookRouteName {
  return (WEBHOOK_ROUTES as readonly string[]).includes(route);
}

/** Holds the active fault rules and decides, per request, which fire. */
export class FaultInjector {
  private rules: FaultRule[] = [];
  private nextId = 1;
  private readonly random: SeededRandom;
  /** Every fault that fired, in order, for reports. */
  readonly log: { ruleId: number; route: RouteName; kind: string; userId?: string; at: number }[] = [];

  constructor(seed: number) {
    this.random = new SeededRandom(seed);
  }

  add(input: FaultRuleInput): FaultRule {
    const rule: FaultRule = { ...faultRuleSchema.parse(input), id: this.nextId++, fired: 0 };
    this.rules.push(rule);
    return rule;
  }

  clear(): void {
    this.rules = [];
  }

  remove(id: number): void {
    this.rules = this.rules.filter((rule) => rule.id !== id);
  }

  /** How many times each fault kind fired. */
  firedByKind(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const entry of this.log) counts[entry.kind] = (counts[entry.kind] ?? 0) + 1;
    return counts;
  }

  list(): FaultRule[] {
    return this.rules.map((rule) => ({ ...rule }));
  }

  /** Faults that act before the handler runs (the request is not processed, except `latency`). */
  before(route: RouteName, userId: string | undefined): FaultRule[] {
    return this.pick(route, userId, (rule) => BEFORE_KINDS.has(rule.kind));
  }

  /** Faults that act after the handler committed its change. */
  after(route: RouteName, userId: string | undefined): FaultRule | undefined {
    return this.pick(route, userId, (rule) => AFTER_KINDS.has(rule.kind))[0];
  }

  /** Faults on one of the simulator's calls to the company's webhook (rules naming that route only). */
  webhook(route: WebhookRouteName, userId: string | undefined): (FaultRule & { kind: WebhookFaultKind })[] {
    return this.pick(route, userId, (rule) => rule.route === route && isWebhookKind(rule.kind)) as (FaultRule & {
      kind: WebhookFaultKind;
    })[];
  }

  private pick(route: RouteName, userId: string | undefined, filter: (rule: FaultRule) => boolean): FaultRule[] {
    const fired: FaultRule[] = [];
    for (const rule of this.rules) {
      if (!filter(rule)) continue;
      if (rule.route !== '*' && rule.route !== route) continue;
      if (rule.route === '*' && isWebhookRoute(route)) continue;
      if (rule.userId !== undefined && rule.userId !== userId) continue;
      if (rule.count !== undefined && rule.fired >= rule.count) continue;
      if (rule.probability < 1 && this.random.next() >= rule.probability) continue;
      rule.fired += 1;
      this.log.push({ ruleId: rule.id, route, kind: rule.kind, ...(userId ? { userId } : {}), at: Date.now() });
      fired.push(rule);
    }
    return fired;
  }
}
