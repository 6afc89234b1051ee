import type { SelfManagedOptions } from './custodian-webhook';

export interface PortalSimulatorOptions {
  host?: string;
  port?: number;
  /** Seed of the fault injector's random choices. */
  seed?: number;
  /** If set, the company-backend routes require `Authorization: Bearer <token>`. */
  backendToken?: string;
  /**
   * Let non-loopback callers use the admin API (seeding, faults, key revocation, inspection of
   * every user's state). Off by default: anyone who reaches it can read and break everything.
   */
  openAdmin?: boolean;
  /**
   * Let non-loopback callers use the company-backend routes, which hand out users' API keys and
   * signing shares. Off by default; a worker in another container needs it (with a backendToken).
   */
  openBackend?: boolean;
  logger?: boolean;
  /**
   * Answer a mark of an already-completed pair with 400, as a stricter Portal might (the
   * contract does not say); the default accepts repeated marks.
   */
  rejectRepeatedMarks?: boolean;
  /** Portal's rate limits (requests per minute); off unless set. */
  rateLimits?: { enclavePerMinute: number; clientPerMinute: number };
  /**
   * Self-Managed Backups (shared/portal-api.md, "the custodian-share webhook"): `/v1/backup`
   * delivers each custodian share to `POST {webhookUrl}/backup`, then validates with
   * `POST {webhookUrl}/backup/fetch`; `/v1/recover` takes the custodian half from that fetch; the
   * client object shows `environment.backupWithPortalEnabled: false`. Unset: Portal-Managed.
   * Switchable at run time with `PUT` / `DELETE /admin/self-managed`. `timeoutMs` is the budget of
   * each call to the webhook (Portal's: 10 000).
   */
  selfManaged?: SelfManagedOptions;
  /**
   * The `backupMethod` sent to the webhook (and shown on the pairs made in Self-Managed mode). Which
   * value Portal sends for Enclave-API backups is not documented; `UNKNOWN` is Portal's "absent".
   */
  webhookBackupMethod?: string;
  /**
   * Count a 204 from `POST {webhookUrl}/backup` as success. Off by default: the contract's text asks
   * for 200 ("Answer 200 … otherwise the backup fails"), only the docs' example answers 204, and a
   * strict simulator catches a webhook that relies on the looser reading. Turn it on to model a
   * Portal that takes any 2xx. `/backup/fetch` must answer 200 in any case (it carries a body).
   */
  acceptWebhook204?: boolean;
  /**
   * How `/v1/backup` (and `/v1/recover`) answers when the webhook fails. Default: 500 with the flat
   * body `{"id": "FAILED_WEBHOOK", "message": "Unable to send backup share to configured webhook"}`.
   * The contract names the id and message, not the status; see WEBHOOK_FAILURE below.
   */
  webhookFailure?: { status?: number; id?: 'FAILED_WEBHOOK' | 'WEBHOOK_FAILED' };
  /**
   * Keep each custodian share in `state` after its delivery (never served by any route, never used
   * for recovery), for in-process test oracles such as a secret scan. Off: Portal keeps no copy.
   */
  retainCustodianShares?: boolean;
}
