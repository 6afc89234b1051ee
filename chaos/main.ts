import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { runCampaign, summarize } from './campaign';
import { parseCampaignStores } from './campaign-options';

/**
 * `npm run chaos -- --backups 1000 --seed 42 [--self-managed] [--cluster] [--kms aws-kms] [--stores portal,postgres]`: prints a summary, writes
 * <run dir>/report.json (and a copy to --report when given).
 */
const program = new Command('chaos')
  .option('--backups <n>', 'backups to run', '200')
  .option('--seed <n>', 'seed of every random choice (printed, so a run can be repeated)')
  .option('--workers <n>', 'worker processes', '2')
  .option('--concurrency <n>', 'backups in flight at once', '25')
  .option('--revoked-share <fraction>', 'share of users whose key is revoked at step 3 or 4', '0.03')
  .option('--fault-rate <p>', 'per-request probability of each Portal fault kind', '0.02')
  .option('--recovery-share <fraction>', 'share of completed users recovered after the backups, under the same faults', '0.1')
  .option('--no-rotation', 'do not rotate the Transit key halfway through the backups')
  .option('--kms <provider>', 'the KMS: vault-transit, or aws-kms (local-kms; its cuts and restarts replace Vault\'s)', 'vault-transit')
  .option('--stores <list>', 'keep a copy in each store, in order (CIPHERTEXT_STORES): portal, postgres (default: the mode\'s one store); the key rotation rewraps every copy')
  .option('--self-managed', 'Self-Managed Backups: own PostgreSQL and custodian-share webhook, both killed now and then')
  .option('--cluster', 'Temporal as a cluster (frontend, history, matching, worker on PostgreSQL), each service and its PostgreSQL killed on its own')
  .option('--webhook-fault-rate <p>', 'self-managed: per-call probability of each webhook fault kind', '0.01')
  .option('--mean-fault-interval <ms>', 'mean time between process and network faults', '8000')
  .option('--timeout <ms>', 'give up after this long', String(60 * 60_000))
  .option('--run-dir <dir>', 'where servers keep data and logs (default: .stack/chaos/<seed>)')
  .option('--report <file>', 'also write the report JSON here')
  .parse();

async function main(): Promise<void> {
  const o = program.opts<Record<string, string | boolean | undefined>>();
  const mode = o.selfManaged ? 'self-managed' : 'portal-managed';
  const stores = parseCampaignStores(typeof o.stores === 'string' ? o.stores : undefined, mode);
  const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(o.seed);
  const report = await runCampaign({
    backups: Number(o.backups),
    seed,
    workers: Number(o.workers),
    concurrency: Number(o.concurrency),
    revokedShare: Number(o.revokedShare),
    recoveryShare: Number(o.recoveryShare),
    // With copies in several stores the rotation rewraps each (the verdict checks every copy after the raise).
    rotateMidRun: o.rotation !== false,
    ...(stores ? { stores } : {}),
    portalFaultRate: Number(o.faultRate),
    mode,
    cluster: o.cluster === true,
    kms: o.kms === 'aws-kms' ? 'aws-kms' : o.kms === 'vault-transit' ? 'vault-transit' : (() => { throw new Error(`--kms must be vault-transit or aws-kms, not ${String(o.kms)}`); })(),
    webhookFaultRate: Number(o.webhookFaultRate),
    meanFaultIntervalMs: Number(o.meanFaultInterval),
    timeoutMs: Number(o.timeout),
    runDir: typeof o.runDir === 'string' ? o.runDir : join(__dirname, '..', '.stack', 'chaos', `${seed}-${Date.now()}`),
  });
  if (typeof o.report === 'string') {
    mkdirSync(dirname(o.report), { recursive: true });
    writeFileSync(o.report, `${JSON.stringify(report, null, 2)}\n`);
  }
  process.stdout.write(`${summarize(report)}\n  report: ${join(report.runDir, 'report.json')}\n`);
  process.exit(report.violationTotal === 0 && !report.timedOut ? 0 : 1);
}

/**
 * A call `resilient` gave up on (no answer in time) keeps retrying in the Temporal client; once the
 * campaign closes its connections at the end, that retry's timer throws "Channel has been shut
 * down" outside any promise (grpc-retry's timer). Such a call's answer is no longer wanted: the
 * report is written regardless. Anything else uncaught still ends the campaign.
 */
process.on('uncaughtException', (error) => {
  if (error instanceof Error && error.message === 'Channel has been shut down') {
    console.error('[chaos] a call abandoned earlier retried on a closed connection (ignored; its answer is no longer wanted)');
    return;
  }
  console.error(error);
  process.exit(2);
});

main().catch((error: unknown) => {
  process.stderr.write(`chaos campaign failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(2);
});
