import type { PortalSimulator } from '../simulator/portal-simulator';
import type { FaultRuleInput } from '../simulator/fault-rules';
import type { ProxyMode } from '../stack/tcp-fault-proxy';
import type { TemporalServiceName } from '../stack/temporal-cluster';
import type { CampaignContext } from './campaign-context';
import { runsCompanyPostgres } from './campaign-options';
import { CLUSTER_FAULTS, type ClusterFault, type ClusterFaultEvent, type InfraFault, type InfraFaultCounts } from './infra-faults';
import type { CampaignStack } from './campaign-stack';
import { sleep } from './resilient';

/** The campaign's users, and what it does to some of them on purpose. */
export interface CampaignUsers {
  userIds: string[];
  /** Users whose key is revoked mid-run → the simulator's fault rule that revokes it (the operator removes it). */
  revoked: Map<string, number>;
  /** Users started twice at once (must still make one run). */
  doubleStart: Set<string>;
}

/** Seeds the users in the simulator and draws (in this order, so a seed replays) who is revoked, where, and who is started twice. */
export function chooseUsers(ctx: CampaignContext, simulator: PortalSimulator): CampaignUsers {
  const { options, random } = ctx;
  const selfManaged = options.mode === 'self-managed';
  const userIds = Array.from({ length: options.backups }, (_, i) => `chaos-${options.seed}-${i + 1}`);
  for (const id of userIds) simulator.state.seedUser(id);
  const revoked = new Map<string, number>(); // userId → fault rule id
  for (const userId of userIds) {
    if (random.next() < options.revokedShare) revoked.set(userId, 0);
  }
  if (options.revokedShare > 0 && revoked.size === 0) revoked.set(userIds[Math.floor(userIds.length / 2)]!, 0);
  for (const userId of revoked.keys()) {
    // Self-managed: step 3 writes to PostgreSQL, not Portal, so the key fails at step 4 (the draw
    // is made all the same, so the rest of the seeded schedule does not shift).
    const atStore = random.next() < 0.5;
    const route = atStore && !selfManaged ? 'storeCipherText' : 'markPairs';
    revoked.set(userId, simulator.faults.add({ route, kind: 'status', status: 401, body: 'Invalid or revoked API key', userId }).id);
  }
  const doubleStart = new Set(userIds.filter(() => random.next() < options.doubleStartShare));
  return { userIds, revoked, doubleStart };
}

/** Every Portal fault kind, at the run's rate on any route. */
const portalFaultKinds = (portalTimeoutMs: number): FaultRuleInput[] => [
  { route: '*', kind: 'status', status: 503 },
  { route: '*', kind: 'status', status: 500 },
  { route: '*', kind: 'rate-limit', retryAfterSeconds: 1 },
  { route: '*', kind: 'rate-limit', retryAfterSeconds: null },
  { route: '*', kind: 'html-error', status: 502 },
  { route: '*', kind: 'hang', latencyMs: portalTimeoutMs * 3 },
  { route: '*', kind: 'lost-response' },
  { route: '*', kind: 'malformed' },
];

/**
 * Self-managed: Portal's calls to the webhook fail (or misbehave) now and then: each failure
 * answers the step 1 call with FAILED_WEBHOOK, which the worker retries with new pairs.
 */
const webhookFaultKinds = (portalTimeoutMs: number): FaultRuleInput[] => [
  { route: 'webhookDelivery', kind: 'webhook-status', status: 503 },
  { route: 'webhookFetch', kind: 'webhook-status', status: 503 },
  // Past the worker's Portal timeout, as a slow webhook would make /v1/backup.
  { route: 'webhookDelivery', kind: 'webhook-timeout', latencyMs: portalTimeoutMs + 1_000 },
  { route: 'webhookDelivery', kind: 'webhook-refused' },
  { route: 'webhookDelivery', kind: 'webhook-lost-response' },
  { route: 'webhookFetch', kind: 'webhook-lost-response' },
  // Must not fail anything: a second delivery of the same share, and one without backupSharePairId.
  { route: 'webhookDelivery', kind: 'webhook-duplicate' },
  { route: 'webhookDelivery', kind: 'webhook-omit-pair-id' },
  // The webhook must refuse these (401, 400) and store nothing.
  { route: 'webhookDelivery', kind: 'webhook-wrong-secret' },
  { route: 'webhookDelivery', kind: 'webhook-malformed' },
];

/** Arms the simulator's Portal (and, self-managed, webhook) faults: each kind at its rate, and once for sure if asked. */
export function armPortalFaults(ctx: CampaignContext, simulator: PortalSimulator, userIds: string[]): void {
  const { options } = ctx;
  const portalKinds = portalFaultKinds(options.portalTimeoutMs);
  for (const rule of portalKinds) simulator.faults.add({ ...rule, probability: options.portalFaultRate });
  if (options.guaranteeEachFault) {
    const routes = ['backup', 'storeCipherText', 'getCipherText', 'markPairs'] as const;
    portalKinds.forEach((rule, i) => simulator.faults.add({ ...rule, route: routes[i % routes.length]!, count: 1 }));
  }
  if (options.mode !== 'self-managed') return;
  const webhookKinds = webhookFaultKinds(options.portalTimeoutMs);
  for (const rule of webhookKinds) simulator.faults.add({ ...rule, probability: options.webhookFaultRate });
  if (options.guaranteeEachFault) {
    // Each kind once, on a user of its own (spread over the run): rules on the same call would
    // fire together, and the first to act (refused, say) would hide the others.
    webhookKinds.forEach((rule, i) => {
      const userId = userIds[Math.floor(((i + 0.5) * userIds.length) / webhookKinds.length)]!;
      simulator.faults.add({ ...rule, userId, count: 1 });
    });
  }
}

/**
 * The process and network faults that fire at fixed points of the run (the share of backups
 * ended), so every kind surely fires in even a short slice.
 */
export function milestonesFor(options: CampaignContext['options']): [number, InfraFault][] {
  const selfManaged = options.mode === 'self-managed';
  // A postgres copy (portal-managed): its store is SIGKILLed twice, as in self-managed runs.
  const postgresCopy = !selfManaged && runsCompanyPostgres(options);
  if (options.cluster) {
    // Each Temporal service and its PostgreSQL once, spread over the run, beside the others.
    return [
      [0.08, 'worker-kill'],
      [0.16, 'temporal-history-kill'],
      [0.24, 'vault-cut'],
      [0.32, 'temporal-matching-kill'],
      [0.4, 'temporal-frontend-kill'],
      ...(selfManaged ? ([[0.45, 'postgres-kill'], [0.5, 'webhook-kill']] as [number, InfraFault][]) : []),
      ...(postgresCopy ? ([[0.45, 'postgres-kill']] as [number, InfraFault][]) : []),
      [0.56, 'temporal-postgres-kill'],
      [0.64, 'temporal-worker-kill'],
      [0.72, 'vault-restart'],
      [0.8, 'temporal-history-kill'],
      [0.9, 'worker-kill'],
    ];
  }
  if (selfManaged) {
    return [
      [0.1, 'worker-kill'],
      [0.2, 'postgres-kill'],
      [0.3, 'vault-cut'],
      [0.4, 'webhook-kill'],
      [0.5, 'temporal-restart'],
      [0.6, 'postgres-kill'],
      [0.7, 'vault-restart'],
      [0.85, 'worker-kill'],
    ];
  }
  return [
    [0.1, 'worker-kill'],
    ...(postgresCopy ? ([[0.2, 'postgres-kill']] as [number, InfraFault][]) : []),
    [0.3, 'vault-cut'],
    [0.5, 'temporal-restart'],
    ...(postgresCopy ? ([[0.6, 'postgres-kill']] as [number, InfraFault][]) : []),
    [0.7, 'vault-restart'],
    [0.85, 'worker-kill'],
  ];
}

/** The kinds the random faults between milestones draw from (a kind listed twice is drawn twice as often). */
export function randomKindsFor(options: CampaignContext['options']): InfraFault[] {
  const kinds: InfraFault[] = options.cluster
    ? ['worker-kill', 'worker-kill', 'vault-cut', 'vault-restart', ...CLUSTER_FAULTS]
    : ['worker-kill', 'worker-kill', 'vault-cut', 'temporal-restart', 'vault-restart'];
  if (options.mode === 'self-managed') kinds.push('postgres-kill', 'postgres-kill', 'webhook-kill');
  else if (runsCompanyPostgres(options)) kinds.push('postgres-kill', 'postgres-kill');
  return kinds;
}

/** Injects process and network faults into the stack, and counts them for the report. */
export class InfraFaultInjector {
  readonly counts: InfraFaultCounts = {
    'worker-kill': 0,
    'temporal-restart': 0,
    'vault-cut': 0,
    'vault-restart': 0,
    'postgres-kill': 0,
    'webhook-kill': 0,
    ...(Object.fromEntries(CLUSTER_FAULTS.map((kind) => [kind, 0])) as Record<ClusterFault, number>),
    vaultCutModes: {},
  };
  readonly clusterEvents: ClusterFaultEvent[] = [];

  constructor(
    private readonly ctx: CampaignContext,
    private readonly stack: CampaignStack,
  ) {}

  async inject(kind: InfraFault): Promise<void> {
    this.counts[kind] += 1;
    if (kind === 'worker-kill') await this.killWorker();
    else if (kind === 'temporal-restart') await this.restartTemporal();
    else if ((CLUSTER_FAULTS as readonly string[]).includes(kind)) await this.killClusterPart(kind as ClusterFault);
    else if (kind === 'vault-restart') await this.restartKms();
    else if (kind === 'postgres-kill') await this.killPostgres();
    else if (kind === 'webhook-kill') await this.killWebhook();
    else await this.cutKms();
  }

  /** A random pause of `minMs` plus up to `spreadMs`, drawn from the run's seed. */
  private pause(minMs: number, spreadMs: number): Promise<unknown> {
    return sleep(minMs + this.ctx.random.next() * spreadMs);
  }

  private async killWorker(): Promise<void> {
    const { workers } = this.stack;
    const index = Math.floor(this.ctx.random.next() * workers.size);
    await workers.kill(index);
    this.ctx.say(`SIGKILL worker-${index}`);
    await this.pause(500, 2_000);
    workers.spawn(index);
  }

  private async restartTemporal(): Promise<void> {
    const { temporal } = this.stack;
    this.ctx.say('SIGKILL Temporal, start it again on the same database');
    if (!('restart' in temporal)) throw new Error('a cluster is restarted one service at a time');
    await temporal.restart();
  }

  /** One Temporal service, or Temporal's PostgreSQL, killed and started again; timed for the stall figures. */
  private async killClusterPart(kind: ClusterFault): Promise<void> {
    const cluster = this.stack.cluster!;
    const at = Date.now();
    if (kind === 'temporal-postgres-kill') {
      this.ctx.say("SIGKILL Temporal's PostgreSQL (postmaster and backends), start it again on its data directory");
      await cluster.postgres.kill();
      await this.pause(500, 2_500);
      await cluster.postgres.restart();
      await cluster.waitReady();
    } else {
      const name = kind.replace(/^temporal-/, '').replace(/-kill$/, '') as TemporalServiceName;
      this.ctx.say(`SIGKILL Temporal ${name}, start it again on the same ports`);
      await this.stack.supervisor.killOnPurpose(cluster.services[name].process);
      await this.pause(500, 2_000);
      await this.stack.startClusterService(name);
    }
    this.clusterEvents.push({ kind, atMs: at - this.ctx.started, backInServiceMs: Date.now() - at });
  }

  private async restartKms(): Promise<void> {
    const { aws } = this.stack.kms;
    if (aws) {
      this.ctx.say('SIGKILL local-kms, start it again on its data directory');
      await aws.restart();
    } else {
      this.ctx.say('SIGKILL Vault, start and unseal it again');
      await this.stack.vault.restart();
    }
  }

  private async killPostgres(): Promise<void> {
    const postgres = this.stack.postgres!;
    this.ctx.say('SIGKILL PostgreSQL (postmaster and backends), start it again on its data directory');
    await postgres.kill();
    await this.pause(500, 2_500);
    await postgres.restart();
  }

  private async killWebhook(): Promise<void> {
    const webhook = this.stack.webhook!;
    this.ctx.say('SIGKILL the webhook, start it again');
    await this.stack.supervisor.killOnPurpose(webhook.process);
    await this.pause(500, 2_000);
    await webhook.start();
  }

  /** The KMS in use cut off through its proxy (refused, black-holed or reset) for a few seconds. */
  private async cutKms(): Promise<void> {
    const { proxy, name } = this.stack.kms;
    const modes: ProxyMode[] = ['refuse', 'blackhole', 'reset'];
    const mode = modes[Math.floor(this.ctx.random.next() * modes.length)]!;
    this.counts.vaultCutModes[mode] = (this.counts.vaultCutModes[mode] ?? 0) + 1;
    this.ctx.say(`${name} cut off (${mode})`);
    await proxy.setMode(mode);
    await this.pause(1_000, 4_000);
    await proxy.setMode('pass');
  }
}
