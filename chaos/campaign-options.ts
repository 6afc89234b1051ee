import { z } from 'zod';

/** Everything a campaign run can be told; defaults make the documented 200-backup campaign. */
export const campaignOptionsSchema = z.object({
  backups: z.number().int().min(1).max(100_000).default(200),
  /** Backups in flight at once. */
  concurrency: z.number().int().min(1).max(1_000).default(25),
  workers: z.number().int().min(1).max(16).default(2),
  seed: z.number().int().min(0).default(() => Math.floor(Math.random() * 2 ** 31)),
  /** Share of users whose key is revoked at step 3 or 4, restored later, then retried by the operator. */
  revokedShare: z.number().min(0).max(1).default(0.03),
  /** Share of users started twice at once (must still make one run). */
  doubleStartShare: z.number().min(0).max(1).default(0.1),
  /**
   * `self-managed`: Portal's Self-Managed Backups. The campaign also runs its own PostgreSQL and
   * the custodian-share webhook (a process), the simulator delivers custodian shares to it, the
   * workers keep client ciphertexts in PostgreSQL, and PostgreSQL and the webhook are killed too.
   */
  mode: z.enum(['portal-managed', 'self-managed']).default('portal-managed'),
  /**
   * Temporal as a cluster (stack/temporal-cluster.ts: frontend, history, matching and worker
   * processes on a PostgreSQL of their own) instead of the dev server; each service and that
   * PostgreSQL are SIGKILLed and started again on their own, in place of the dev server's restart.
   */
  cluster: z.boolean().default(false),
  /** Self-managed: per-call probability of each webhook fault kind (on Portal's calls to the webhook). */
  webhookFaultRate: z.number().min(0).max(0.2).default(0.01),
  /** Share of users whose wallet is recovered (from its completed backup) once the backups are over, under the same faults. */
  recoveryShare: z.number().min(0).max(1).default(0.1),
  /**
   * The KMS the workers and the webhook use: Vault Transit, or AWS KMS (local-kms from the Go module
   * proxy). The KMS cut and restart faults hit the one in use.
   */
  kms: z.enum(['vault-transit', 'aws-kms']).default('vault-transit'),
  /**
   * Where the workers keep client ciphertexts (CIPHERTEXT_STORES): a copy in each, in order. Default:
   * Portal (portal-managed) or the company's PostgreSQL (self-managed). With postgres, the campaign
   * runs its own PostgreSQL and SIGKILLs it now and then; with several stores the key rotation is
   * skipped (it rewraps one store) and every marked pair must have every copy.
   */
  stores: z.array(z.enum(['portal', 'postgres'])).min(1).max(2).optional(),
  /** Rotate the Transit key halfway through the backups (rewrap everything, raise min_decryption_version). */
  rotateMidRun: z.boolean().default(true),
  /** Per-request probability of each Portal fault kind. */
  portalFaultRate: z.number().min(0).max(0.2).default(0.02),
  /** Arm each Portal fault kind once at the start, so every kind fires in even a short run. */
  guaranteeEachFault: z.boolean().default(true),
  /**
   * Mean time between infrastructure faults (worker kill, Temporal restart, Vault cut/restart;
   * self-managed: also PostgreSQL and webhook SIGKILLs).
   */
  meanFaultIntervalMs: z.number().int().min(500).default(8_000),
  /** Hard limit for the whole run; the campaign fails if backups are still open then. */
  timeoutMs: z.number().int().min(10_000).default(30 * 60_000),
  portalTimeoutMs: z.number().int().min(200).default(2_000),
  /** Vault AppRole token TTL, short so renewal happens during the run. */
  vaultTokenTtl: z.string().default('20s'),
  runDir: z.string(),
  quiet: z.boolean().default(false),
});

export type CampaignOptions = z.infer<typeof campaignOptionsSchema>;

export type CampaignStore = 'portal' | 'postgres';

/** The stores that keep a copy, in order (`stores`, else the mode's one store). */
export function campaignStores(options: Pick<CampaignOptions, 'stores' | 'mode'>): CampaignStore[] {
  return options.stores ?? [options.mode === 'self-managed' ? 'postgres' : 'portal'];
}

/** Whether the campaign runs the company's PostgreSQL (self-managed, or a postgres copy). */
export function runsCompanyPostgres(options: Pick<CampaignOptions, 'stores' | 'mode'>): boolean {
  return options.mode === 'self-managed' || campaignStores(options).includes('postgres');
}

/**
 * `--stores portal,postgres` as the campaign's option: known, each once, and no Portal copy in
 * self-managed mode (the configuration refuses it).
 */
export function parseCampaignStores(value: string | undefined, mode: CampaignOptions['mode']): CampaignStore[] | undefined {
  if (value === undefined) return undefined;
  const names = value.split(',').map((name) => name.trim());
  const problems = [
    ...names.filter((name) => name !== 'portal' && name !== 'postgres').map((name) => `unknown store "${name}" (portal or postgres)`),
    ...(new Set(names).size !== names.length ? ['a store is named twice'] : []),
    ...(mode === 'self-managed' && names.includes('portal') ? ['self-managed keeps no copy at Portal'] : []),
  ];
  if (problems.length > 0) throw new Error(`--stores: ${problems.join('; ')}`);
  return names as CampaignStore[];
}
export type CampaignOptionsInput = z.input<typeof campaignOptionsSchema>;
