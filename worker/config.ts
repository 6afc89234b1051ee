import { z } from 'zod';
import type { PortalClientConfig } from '../adapters/portal/portal-client';
import type { PortalRequestLimits } from '../adapters/portal/portal-rate-limiter';
import type { HttpCredentialsSourceConfig } from '../adapters/credentials/credentials-source';
import type { HttpSigningShareHandoverConfig } from '../adapters/http/signing-share-handover';
import type { CodecKeyRing } from '../codec/encryption-codec';
import type { KeyRing } from '../codec/key-ring';
import { codecEnvProblems, codecEnvSchema, toCodecKeyRing } from '../config/codec-config';
import { sealingEnvProblems, sealingEnvSchema, toSealingKeyRing } from '../config/sealing-config';
import { envHeader, envInt, envNonEmpty, envUrlTemplate, toHeader } from '../config/env-schema';
import type { CiphertextStoreConfig } from '../adapters/stores/ciphertext-store-factory';
import type { BackupMode } from '../activities/backup/backup-mode';
import { loadConfig } from '../config/load-config';
import { backendEnvProblems, backendEnvSchema, storeKinds, toCredentialsConfig, toPortalConfig, toStoreConfigs } from '../config/backend-config';
import { kmsEnvProblems, kmsEnvSchema, kmsPresenceProblems, kmsTimeoutMs, toKmsConfig, type KmsConfig } from '../config/kms-config';
import { temporalEnvProblems, temporalEnvSchema, toTemporalConfig, type TemporalConfig } from '../config/temporal-config';
import { toVersioningConfig, versioningEnvProblems, versioningEnvSchema, type WorkerVersioningConfig } from '../config/versioning-config';
import { auditEnvProblems, auditEnvSchema, toAuditConfig, type AuditConfig } from '../config/audit-config';
import { envListenAddress, formatListenAddress, type ListenAddress } from '../metrics/listen-address';
import { approvalEnvProblems, approvalEnvSchema, toApprovalConfig, type ApprovalConfig } from '../config/approval-config';
import { toVaultConfig, type VaultConfig } from '../config/vault-config';

const workerEnvSchema = temporalEnvSchema.extend(codecEnvSchema.shape).extend(sealingEnvSchema.shape).extend(kmsEnvSchema.shape).extend(backendEnvSchema.shape).extend(versioningEnvSchema.shape).extend(approvalEnvSchema.shape).extend(auditEnvSchema.shape).extend({
  BACKUP_MODE: z.enum(['portal-managed', 'self-managed'], { error: 'must be portal-managed or self-managed' }).default('portal-managed'),
  SIGNING_SHARES_URL: envUrlTemplate.optional(),
  SIGNING_SHARES_AUTH_HEADER: envHeader.optional(),
  SIGNING_SHARES_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  BATCH_SOURCE_ALLOWED_ORIGINS: z
    .string()
    .trim()
    .refine(
      (value) => value.split(',').every((origin) => /^https?:\/\/[^/\s]+$/.test(origin.trim()) && URL.canParse(origin.trim())),
      'must be comma-separated origins like https://backend.example.com (scheme, host and port; no path)',
    )
    .optional(),
  PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: envInt(3, 1_000_000).optional(),
  PORTAL_CLIENT_REQUESTS_PER_MINUTE: envInt(3, 1_000_000).optional(),
  WORKER_SHUTDOWN_GRACE_MS: envInt(1, 600_000).default(30_000),
  WORKER_MAX_CONCURRENT_ACTIVITIES: envInt(1, 10_000).default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: envInt(1, 10_000).default(40),
  WORKER_WORKFLOW_BUNDLE: envNonEmpty.optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
  METRICS_ADDRESS: envListenAddress.optional(),
  TEMPORAL_METRICS_ADDRESS: envListenAddress.optional(),
});

export interface WorkerConfig {
  temporal: TemporalConfig;
  /** The Worker Deployment version this worker polls as (TEMPORAL_WORKER_VERSIONING, TEMPORAL_DEPLOYMENT_NAME, TEMPORAL_BUILD_ID). */
  versioning: WorkerVersioningConfig;
  codecKeys: CodecKeyRing;
  /** The workers' own key ring for sealing shares in history (never given to clients). */
  sealingKeys: KeyRing;
  /** Origins a batch's paged user source may be fetched from (the credential header goes there). */
  batchSourceOrigins: string[];
  portal: PortalClientConfig;
  /** The KMS that encrypts the shares (KMS_PROVIDER): Vault Transit or AWS KMS. */
  kms: KmsConfig;
  credentials: HttpCredentialsSourceConfig;
  /** Where a recovery hands the new signing shares (SIGNING_SHARES_URL); recovery refuses to start without it. */
  signingShares?: HttpSigningShareHandoverConfig;
  /** Where client ciphertexts are stored: one store (CIPHERTEXT_STORE), or a copy in each (CIPHERTEXT_STORES), the primary first. */
  stores: CiphertextStoreConfig[];
  /** Recovery approvals: approvers, how many, how long, the operators' signing keys. */
  approvals: ApprovalConfig;
  /** The Vault the operators' signatures are verified with (the workers' own token); absent without VAULT_ADDR. */
  operatorVault?: VaultConfig;
  /** Portal-Managed or Self-Managed Backups (BACKUP_MODE), checked against Portal's environment. */
  mode: BackupMode;
  /** The company's PostgreSQL, when a store, Self-Managed mode or the shared Portal rate limit needs it, and for the audit trail. */
  databaseUrl?: string;
  /** The audit trail's seals and periodic verification (AUDIT_*); the trail itself needs DATABASE_URL. */
  audit: AuditConfig;
  /**
   * Portal's rate limits (PORTAL_ENCLAVE_ / PORTAL_CLIENT_REQUESTS_PER_MINUTE), kept across every
   * worker process in the company database; unset: no limit but the batches' pacing.
   */
  portalLimits?: PortalRequestLimits;
  shutdownGraceMs: number;
  maxConcurrentActivities: number;
  maxConcurrentWorkflowTasks: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** A workflow bundle built ahead (bundleWorkflowCode); otherwise the worker bundles at start. */
  workflowBundlePath?: string;
  /** Prometheus endpoints, each off when unset (see metrics/). */
  metrics: {
    /** The service's own metrics (METRICS_ADDRESS). */
    address?: ListenAddress;
    /** The Temporal runtime's exporter (TEMPORAL_METRICS_ADDRESS): SDK metrics and the workflows' metrics. */
    temporalAddress?: string;
  };
}

/** Reads and validates the worker's whole configuration; throws one ConfigError listing every problem. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = loadConfig(workerEnvSchema, env, (parsed) => {
    const problems = [
      ...temporalEnvProblems(parsed),
      ...codecEnvProblems(parsed),
      ...sealingEnvProblems(parsed, parsed.PAYLOAD_CODEC_KEYS),
      ...kmsEnvProblems(parsed),
      ...versioningEnvProblems(parsed),
      ...approvalEnvProblems(parsed),
      ...auditEnvProblems(parsed),
    ];
    if (parsed.BACKUP_MODE === 'self-managed' && !parsed.DATABASE_URL) {
      problems.push('DATABASE_URL is required when BACKUP_MODE=self-managed: the workers check the custodian shares the webhook stored there');
    }
    const limits = [parsed.PORTAL_ENCLAVE_REQUESTS_PER_MINUTE, parsed.PORTAL_CLIENT_REQUESTS_PER_MINUTE];
    if (limits.some((limit) => limit !== undefined) && !limits.every((limit) => limit !== undefined)) {
      problems.push('PORTAL_ENCLAVE_REQUESTS_PER_MINUTE and PORTAL_CLIENT_REQUESTS_PER_MINUTE go together: set both (Portal’s limits: 50 and 200) or neither');
    } else if (limits.every((limit) => limit !== undefined) && !parsed.DATABASE_URL) {
      problems.push('DATABASE_URL is required with PORTAL_*_REQUESTS_PER_MINUTE: the shared rate limit is counted in the company database, so every worker process counts against one limit');
    }
    if (parsed.BACKUP_MODE === 'self-managed' && storeKinds(parsed).includes('portal')) {
      problems.push('BACKUP_MODE=self-managed keeps the client ciphertexts in the company’s own store: set CIPHERTEXT_STORE=postgres or http (or CIPHERTEXT_STORES without portal)');
    }
    problems.push(...backendEnvProblems(parsed));
    if (parsed.METRICS_ADDRESS && parsed.METRICS_ADDRESS.port === parsed.TEMPORAL_METRICS_ADDRESS?.port) {
      // Two listeners on one port clash even on different addresses (0.0.0.0 covers 127.0.0.1).
      problems.push('METRICS_ADDRESS and TEMPORAL_METRICS_ADDRESS must use different ports (two exporters, one port each)');
    }
    if (kmsTimeoutMs(parsed) >= 120_000 || parsed.PORTAL_TIMEOUT_MS >= 120_000) {
      problems.push('PORTAL_TIMEOUT_MS and VAULT_TIMEOUT_MS (AWS_KMS_TIMEOUT_MS with aws-kms) must stay under the 2-minute activity timeout');
    }
    return problems;
  }, kmsPresenceProblems);
  return {
    temporal: toTemporalConfig(e),
    versioning: toVersioningConfig(e),
    codecKeys: toCodecKeyRing(e),
    sealingKeys: toSealingKeyRing(e),
    // By default only the credentials source's origin, which receives the same header anyway.
    batchSourceOrigins: (e.BATCH_SOURCE_ALLOWED_ORIGINS ?? new URL(e.CREDENTIALS_URL.replace('{userId}', 'u')).origin)
      .split(',')
      .map((origin) => new URL(origin.trim()).origin),
    portal: toPortalConfig(e),
    kms: toKmsConfig(e),
    audit: toAuditConfig(e, toKmsConfig(e)),
    credentials: toCredentialsConfig(e),
    ...(e.SIGNING_SHARES_URL ? { signingShares: signingSharesConfig(e) } : {}),
    stores: toStoreConfigs(e),
    approvals: toApprovalConfig(e),
    ...operatorVaultOf(e),
    mode: e.BACKUP_MODE,
    ...(e.DATABASE_URL ? { databaseUrl: e.DATABASE_URL } : {}),
    ...(e.PORTAL_ENCLAVE_REQUESTS_PER_MINUTE && e.PORTAL_CLIENT_REQUESTS_PER_MINUTE
      ? { portalLimits: { enclavePerMinute: e.PORTAL_ENCLAVE_REQUESTS_PER_MINUTE, clientPerMinute: e.PORTAL_CLIENT_REQUESTS_PER_MINUTE } }
      : {}),
    shutdownGraceMs: e.WORKER_SHUTDOWN_GRACE_MS,
    maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTasks: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    logLevel: e.LOG_LEVEL,
    ...(e.WORKER_WORKFLOW_BUNDLE ? { workflowBundlePath: e.WORKER_WORKFLOW_BUNDLE } : {}),
    metrics: {
      ...(e.METRICS_ADDRESS ? { address: e.METRICS_ADDRESS } : {}),
      ...(e.TEMPORAL_METRICS_ADDRESS ? { temporalAddress: formatListenAddress(e.TEMPORAL_METRICS_ADDRESS) } : {}),
    },
  };
}

/** The signing-share route sends the credentials source's header unless it has its own (the same backend, usually). */
function signingSharesConfig(e: z.infer<typeof workerEnvSchema>): HttpSigningShareHandoverConfig {
  const header = e.SIGNING_SHARES_AUTH_HEADER ?? e.CREDENTIALS_AUTH_HEADER;
  return {
    urlTemplate: e.SIGNING_SHARES_URL!,
    timeoutMs: e.SIGNING_SHARES_TIMEOUT_MS,
    ...(header ? { authHeader: toHeader(header) } : {}),
  };
}

/** The workers' Vault for verifying operator signatures: OPERATOR_VAULT_ADDR, else VAULT_ADDR, with the workers' VAULT_* credentials. */
function operatorVaultOf(e: z.infer<typeof workerEnvSchema>): { operatorVault?: VaultConfig } {
  const addr = e.OPERATOR_VAULT_ADDR ?? e.VAULT_ADDR;
  if (!addr || !(e.VAULT_TOKEN || (e.VAULT_ROLE_ID && e.VAULT_SECRET_ID))) return {};
  return { operatorVault: toVaultConfig({ ...e, VAULT_ADDR: addr }) };
}
