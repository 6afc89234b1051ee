import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defaultBackupsPerMinute } from '../client/batch-client';
import { pacingFor } from '../adapters/portal/portal-rate-limiter';
import { startPostgresServer } from '../stack/postgres-server';
import { startStack, type ServerFlags } from './bench-stack';

/** Portal routes only (not the company backend's): the faults of the rate-limited run. */
export const PORTAL_ROUTES = ['backup', 'storeCipherText', 'getCipherText', 'markPairs', 'getClient'] as const;
const PORTAL_FAULT_KINDS = [{ kind: 'status', status: 503 }, { kind: 'html-error', status: 502 }, { kind: 'lost-response' }, { kind: 'malformed' }] as const;

export interface RateLimitedOptions {
  count: number;
  /** Portal's limits times `scale`, to finish in minutes. */
  scale: number;
  workers: number;
  faultPercent: number;
  /** Start backups at this multiple of the default batch rate (above 1: faster than Portal allows). */
  pace: number;
}

/**
 * The stack of the runs at Portal's limits: the simulator with the (scaled) limits, `workers`
 * worker processes told the same limits, and a PostgreSQL of their own where the shared limit
 * lives (every worker process counts against one limit). Stop both: `stack` then `postgres`.
 */
export async function startLimitedStack(dir: string, run: { users: number; rpm: { enclave: number; client: number }; workers: number }, flags: ServerFlags) {
  const postgres = await startPostgresServer({ logFile: join(dir, 'postgres.log') });
  const stack = await startStack(
    dir,
    {
      users: run.users,
      latencyMs: 20,
      rpm: run.rpm,
      workers: run.workers,
      // The workers' Portal limits are the simulator's (scaled) limits: the cap on what reaches Portal.
      workerEnv: {
        DATABASE_URL: postgres.url,
        PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: String(run.rpm.enclave),
        PORTAL_CLIENT_REQUESTS_PER_MINUTE: String(run.rpm.client),
      },
    },
    flags,
  ).catch(async (error: unknown) => {
    await postgres.stop();
    throw error;
  });
  return { postgres, stack };
}

/**
 * A batch through the simulator's (scaled) Portal limits with several worker processes sharing one
 * limit in PostgreSQL, and Portal faults: how close to the ideal rate it stays, and that no 429 comes back.
 */
export async function rateLimitedRun(out: string, run: RateLimitedOptions, flags: ServerFlags) {
  const { count, workers, faultPercent, pace } = run;
  const rpm = { enclave: 50 * run.scale, client: 200 * run.scale };
  const rate = Math.round(defaultBackupsPerMinute({ enclavePerMinute: rpm.enclave, clientPerMinute: rpm.client }) * pace);
  const dir = join(out, `rate-limited-pace-${pace}`);
  mkdirSync(dir, { recursive: true });
  const { postgres, stack } = await startLimitedStack(dir, { users: count, rpm, workers }, flags);
  try {
    if (faultPercent > 0) await armPortalFaults(stack.simulatorUrl, faultPercent);
    const t0 = Date.now();
    const { batchId } = await stack.batches.startBatch({
      // The backend's paged user list (the simulator serves its seeded users): a list source is
      // capped at MAX_LIST_USER_IDS, and a paged source is how a company re-backs-up everyone.
      source: { kind: 'http', url: `${stack.simulatorUrl}/backend/users` },
      concurrency: 20,
      backupsPerMinute: rate,
    });
    const report = await stack.batches.wait(batchId);
    const wallMs = Date.now() - t0;
    const calls = (await (await fetch(`${stack.simulatorUrl}/admin/calls`)).json()) as Record<string, number>;
    const faults = (await (await fetch(`${stack.simulatorUrl}/admin/faults`)).json()) as { fired: number };
    const idealMs = (count / rate) * 60_000;
    return {
      backups: count,
      workerProcesses: workers,
      pace,
      portalFaultPercent: faultPercent,
      // The simulator's fault log counts the 20 ms latency rule too (once per Portal call): the rest are the injected failures.
      portalFaultsInjected: Math.max(0, faults.fired - PORTAL_ROUTES.reduce((sum, route) => sum + (calls[route] ?? 0), 0)),
      portalCalls: Object.fromEntries(PORTAL_ROUTES.map((route) => [route, calls[route] ?? 0])),
      limitsPerMinute: rpm,
      backupsPerMinute: rate,
      completed: report.counts.completed,
      wallSeconds: Math.round(wallMs / 100) / 10,
      idealSeconds: Math.round(idealMs / 100) / 10,
      overIdealPercent: Math.round(((wallMs - idealMs) / idealMs) * 1000) / 10,
      rateLimited429s: calls.rateLimited ?? 0,
      limiterPerMinute: limiterPerMinute(rpm),
      clientCallsPerMinute: Math.round((PORTAL_ROUTES.filter((r) => r !== 'backup').reduce((sum, r) => sum + (calls[r] ?? 0), 0) / wallMs) * 60_000),
      enclaveCallsPerMinute: Math.round(((calls.backup ?? 0) / wallMs) * 60_000),
    };
  } finally {
    await stack.stop();
    await postgres.stop();
  }
}

/** One request in 100/faultPercent fails, spread evenly over the kinds (never a 429: those must be the limiter's). */
export async function armPortalFaults(simulatorUrl: string, faultPercent: number): Promise<void> {
  const probability = faultPercent / 100 / PORTAL_FAULT_KINDS.length;
  for (const route of PORTAL_ROUTES) {
    for (const fault of PORTAL_FAULT_KINDS) {
      const response = await fetch(`${simulatorUrl}/admin/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ route, ...fault, probability }),
      });
      if (!response.ok) throw new Error(`adding a fault failed: ${response.status} ${await response.text()}`);
    }
  }
}

/** What the shared limit lets through per minute at these limits (its steady pace: pacingFor). */
export function limiterPerMinute(rpm: { enclave: number; client: number }): { enclave: number; client: number } {
  return { enclave: Math.floor(pacingFor(rpm.enclave).perMinute), client: Math.floor(pacingFor(rpm.client).perMinute) };
}
