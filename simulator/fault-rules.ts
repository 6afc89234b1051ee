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
  'listUsers',
] as const;
export type RouteName = (typeof ROUTE_NAMES)[number];

/**
 * A fault, injected on one route (or all). Kinds:
 * - `status`: answer `status` (with Portal's flat error body unless `body` is given) instead of handling;
 * - `rate-limit`: 429, with `Retry-After: retryAfterSeconds` unless that is null;
 * - `html-error`: `status` (default 502) with an HTML page, as a proxy in front of Portal would;
 * - `latency`: wait `latencyMs`, then handle normally;
 * - `hang`: never answer (until the caller gives up, at most `latencyMs` or 5 minutes);
 * - `lost-response`: handle the request (the change is committed), then drop the connection;
 * - `malformed`: handle the request, then answer 200 with a truncated JSON body.
 * `probability` (default 1) and `count` (default unlimited) bound how often it fires.
 */
export const faultRuleSchema = z.object({
  route: z.union([z.enum(ROUTE_NAMES), z.literal('*')]),
  kind: z.enum(['status', 'rate-limit', 'html-error', 'latency', 'hang', 'lost-response', 'malformed']),
  userId: z.string().optional(),
  status: z.number().int().min(100).max(599).optional(),
  body: z.unknown().optional(),
  retryAfterSeconds: z.number().min(0).nullable().optional(),
  latencyMs: z.number().int().min(0).max(600_000).optional(),
  probability: z.number().min(0).max(1).default(1),
  count: z.number().int().min(1).optional(),
});
export type FaultRuleInput = z.input<typeof faultRuleSchema>;
export type FaultRule = z.infer<typeof faultRuleSchema> & { id: number; fired: number };

const BEFORE_KINDS = new Set(['status', 'rate-limit', 'html-error', 'latency', 'hang']);

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
    return this.pick(route, userId, (rule) => !BEFORE_KINDS.has(rule.kind))[0];
  }

  private pick(route: RouteName, userId: string | undefined, filter: (rule: FaultRule) => boolean): FaultRule[] {
    const fired: FaultRule[] = [];
    for (const rule of this.rules) {
      if (!filter(rule)) continue;
      if (rule.route !== '*' && rule.route !== route) continue;
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
