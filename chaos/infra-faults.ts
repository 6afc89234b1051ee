/**
 * The infrastructure faults of the campaign, as the schedule draws them, the injector makes them
 * and the report counts them: one list, read by fault-schedule.ts, fault-loop.ts and
 * campaign-report.ts.
 */

/** Cluster mode: each Temporal service, and Temporal's PostgreSQL, SIGKILLed and started again on its own. */
export const CLUSTER_FAULTS = [
  'temporal-frontend-kill',
  'temporal-history-kill',
  'temporal-matching-kill',
  'temporal-worker-kill',
  'temporal-postgres-kill',
] as const;
export type ClusterFault = (typeof CLUSTER_FAULTS)[number];
export type InfraFault = 'worker-kill' | 'temporal-restart' | 'vault-cut' | 'vault-restart' | 'postgres-kill' | 'webhook-kill' | ClusterFault;

/** How many of each fault the campaign made, and the Vault cuts by mode. */
export type InfraFaultCounts = Record<InfraFault, number> & { vaultCutModes: Record<string, number> };

/** One cluster fault: when (ms into the run), and when the cluster served again. */
export interface ClusterFaultEvent {
  kind: ClusterFault;
  atMs: number;
  backInServiceMs: number;
}
