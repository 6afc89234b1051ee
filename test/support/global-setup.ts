import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startTemporalDevServer } from '../../stack/temporal-dev-server';
import { startVaultDevServer } from '../../stack/vault-dev-server';
import { writeWorkflowBundle } from '../../stack/worker-process';

export const RUN_DIR = join(__dirname, '..', '..', '.stack', 'test-run');

/**
 * Starts the real servers every test file shares (a Temporal dev server and a Vault dev server
 * with Transit), bundles the workflow code once, and hands their addresses to the tests.
 */
export default async function setup(project: TestProject) {
  mkdirSync(RUN_DIR, { recursive: true });
  const started = Date.now();
  const servers = await Promise.allSettled([
    startTemporalDevServer({ logFile: join(RUN_DIR, 'temporal.log') }),
    startVaultDevServer({ logFile: join(RUN_DIR, 'vault.log') }),
  ]);
  const [temporalStart, vaultStart] = servers;
  if (temporalStart.status === 'rejected' || vaultStart.status === 'rejected') {
    await Promise.all(servers.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
    throw temporalStart.status === 'rejected' ? temporalStart.reason : (vaultStart as PromiseRejectedResult).reason;
  }
  const temporal = temporalStart.value;
  const vault = vaultStart.value;
  const bundlePath = join(RUN_DIR, 'workflow-bundle.js');
  try {
    await writeWorkflowBundle(bundlePath);
  } catch (error) {
    await Promise.all([temporal.stop(), vault.stop()]);
    throw error;
  }
  process.stdout.write(
    `test stack ready in ${Date.now() - started} ms: Temporal ${temporal.address}, Vault ${vault.addr}, logs in ${RUN_DIR}\n`,
  );

  project.provide('temporalAddress', temporal.address);
  project.provide('vaultAddr', vault.addr);
  project.provide('vaultToken', vault.rootToken);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('codecKeys', `test-key-1:${randomBytes(32).toString('base64')}`);
  project.provide('sealingKeys', `test-seal-1:${randomBytes(32).toString('base64')}`);
  project.provide('runDir', RUN_DIR);

  return async () => {
    await Promise.all([temporal.stop(), vault.stop()]);
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    vaultAddr: string;
    vaultToken: string;
    workflowBundlePath: string;
    codecKeys: string;
    /** The workers' share-sealing key ring (never given to the test's clients). */
    sealingKeys: string;
    runDir: string;
  }
}
