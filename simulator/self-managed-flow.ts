import { CURVES } from '../domain/curves';
import { DEFAULT_WEBHOOK_TIMEOUT_MS, selfManagedSchema, type SelfManagedOptions, type WebhookSettings } from './custodian-webhook';
import { flatError, type Outcome } from './outcomes';
import type { PortalSimulatorOptions } from './simulator-options';
import { sha256Hex, type SimBackupPair, type SimClient } from './portal-state';
import type { SimulatorContext } from './simulator-context';

/**
 * A failed webhook: 500 and Portal's flat Enclave error body, by default. The contract gives the id
 * and message ("the backup fails with FAILED_WEBHOOK"), not the status. 500, because the fault is
 * neither the caller's request nor permanent: the company's webhook was down, slow or wrong, and
 * the service's classification (5xx → retry with backoff) is then the right reaction; a new
 * `/v1/backup` makes new pairs and the failed ones stay `incomplete`, harmless. A 400 would make
 * the service park the backup on the first webhook hiccup. `webhookFailure` changes status and id.
 */
const WEBHOOK_FAILURE = {
  status: 500,
  id: 'FAILED_WEBHOOK',
  backupMessage: 'Unable to send backup share to configured webhook',
  recoverMessage: 'Unable to fetch backup share from configured webhook',
} as const;

/** The webhook settings for a Self-Managed configuration (undefined: Portal-Managed). */
export function webhookSettingsFor(options: PortalSimulatorOptions, config: SelfManagedOptions | undefined): WebhookSettings | undefined {
  if (!config) return undefined;
  const parsed = selfManagedSchema.parse(config);
  return {
    webhookUrl: parsed.webhookUrl,
    webhookSecret: parsed.webhookSecret,
    timeoutMs: parsed.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS,
    backupMethod: options.webhookBackupMethod ?? 'UNKNOWN',
    acceptWebhook204: options.acceptWebhook204 ?? false,
  };
}

function webhookFailure(options: PortalSimulatorOptions, message: string): Outcome {
  return flatError(options.webhookFailure?.status ?? WEBHOOK_FAILURE.status, options.webhookFailure?.id ?? WEBHOOK_FAILURE.id, message);
}

/**
 * Self-Managed `/v1/backup`, after the pairs are made: deliver each custodian share, then validate
 * with fetch. Any failure answers FAILED_WEBHOOK without the client shares, and the pairs stay
 * `incomplete`. Portal keeps no copy of the custodian shares afterwards, whatever the outcome.
 */
export async function deliverCustodianShares(
  ctx: SimulatorContext,
  settings: WebhookSettings,
  client: SimClient,
  response: Record<string, { id: string; share: string }>,
): Promise<Outcome> {
  const { state, webhook, options } = ctx;
  const pairs = CURVES.map((curve) => state.findPair(client, response[curve]!.id)!);
  const context = { userId: client.userId, clientId: client.clientId };
  try {
    const delivered = await webhook.deliver(
      settings,
      context,
      pairs.map((pair) => ({ pairId: pair.id, curve: pair.curve, share: pair.custodianShare! })),
      (pairId) => {
        const pair = pairs.find((p) => p.id === pairId)!;
        pair.custodian.delivery = 'delivered';
        pair.custodian.deliveredAt = new Date().toISOString();
      },
    );
    if (!delivered.ok) {
      for (const pair of pairs) {
        if (pair.custodian.delivery === 'pending') pair.custodian.delivery = pair.id === delivered.failedPairId ? 'failed' : 'not-sent';
      }
      return webhookFailure(options, WEBHOOK_FAILURE.backupMessage);
    }
    // "Portal picks the one it needs": each share just delivered must come back exactly as sent.
    const sentShares = pairs.map((pair) => ({ id: pair.id, share: pair.custodianShare! }));
    const fetched = await webhook.fetchShares(settings, context, 'backup', pairs.map((pair) => pair.id), (shares) => {
      const held = new Set(shares);
      const missing = sentShares.filter((sent) => !held.has(sent.share)).map((sent) => sent.id);
      return missing.length > 0 ? `share of pair ${missing.join(', ')} missing` : undefined;
    });
    if (!fetched.ok) return webhookFailure(options, WEBHOOK_FAILURE.backupMessage);
    for (const pair of pairs) pair.custodian.validated = true;
    return { status: 200, body: response };
  } finally {
    if (!options.retainCustodianShares) for (const pair of pairs) delete pair.custodianShare;
  }
}

/**
 * Self-Managed `/v1/recover`: Portal holds no custodian share of a pair made in Self-Managed mode,
 * so it fetches them from the webhook and recognises each pair's by its digest. Pairs made in
 * Portal-Managed mode (before a switch) are in Portal's own storage and need no fetch.
 */
export async function custodianSharesForRecovery(ctx: SimulatorContext, client: SimClient, pairs: SimBackupPair[]): Promise<Outcome | undefined> {
  const delivered = pairs.filter((pair) => pair.custodian.mode === 'self-managed');
  if (delivered.length === 0) return undefined;
  const settings = ctx.live.selfManaged;
  if (!settings) return webhookFailure(ctx.options, `${WEBHOOK_FAILURE.recoverMessage}: no webhook is configured`);
  const context = { userId: client.userId, clientId: client.clientId };
  const fetched = await ctx.webhook.fetchShares(settings, context, 'recover', delivered.map((pair) => pair.id), (shares) => {
    const held = new Set(shares.map(sha256Hex));
    const missing = delivered.filter((pair) => !held.has(pair.custodian.sha256)).map((pair) => pair.id);
    return missing.length > 0 ? `share of pair ${missing.join(', ')} missing` : undefined;
  });
  return fetched.ok ? undefined : webhookFailure(ctx.options, WEBHOOK_FAILURE.recoverMessage);
}
