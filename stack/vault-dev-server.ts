import { randomBytes } from 'node:crypto';
import nodeVault from 'node-vault';
import { freePortBelow32768 } from './free-port';
import { startProcess, waitUntil, type ManagedProcess } from './managed-process';
import { toolBinary } from './tool-binaries';
import { AUDIT_SIGNING_KEY, auditSealerPolicy, auditVerifierPolicy, createAuditSigningKey } from './vault-policies';

export interface VaultDevServer {
  addr: string;
  port: number;
  rootToken: string;
  transitMount: string;
  transitKey: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * A Vault-compatible dev server (in-memory: keys die with the process) with Transit enabled and a
 * derived AES-256-GCM96 key, so ciphertexts can be bound to a context.
 */
export async function startVaultDevServer(options: { logFile: string; port?: number; transitKey?: string }): Promise<VaultDevServer> {
  const binary = toolBinary('vault');
  const port = options.port ?? (await freePortBelow32768());
  const rootToken = `dev-root-${randomBytes(12).toString('hex')}`;
  const addr = `http://127.0.0.1:${port}`;
  const transitMount = 'transit';
  const transitKey = options.transitKey ?? 'mpc-backup';
  const proc = startProcess(
    'vault',
    binary,
    ['server', '-dev', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token'],
    // VAULT_* variables of the caller must not leak into the server's own client configuration.
    { logFile: options.logFile, env: { PATH: process.env.PATH, HOME: process.env.HOME } },
  );
  const admin = nodeVault({ endpoint: addr, token: rootToken, debug: () => undefined } as nodeVault.VaultOptions);
  await waitUntil(
    `Vault dev server on ${addr}`,
    async () => {
      const health = (await admin.health()) as { initialized?: boolean; sealed?: boolean };
      return health.initialized === true && health.sealed === false;
    },
    60_000,
    proc.exited,
  );
  await admin.mount({ mount_point: transitMount, type: 'transit' });
  await admin.write(`${transitMount}/keys/${transitKey}`, { type: 'aes256-gcm96', derived: true });
  // The audit chain's seals (docs/operations.md, "Verifying the audit trail"), and the policies of
  // its sealer (the workers) and of an auditor (`vault token create -policy=mpc-audit-verifier`).
  await createAuditSigningKey(admin, transitMount);
  await admin.addPolicy({ name: 'mpc-audit-sealer', rules: auditSealerPolicy(AUDIT_SIGNING_KEY, transitMount) });
  await admin.addPolicy({ name: 'mpc-audit-verifier', rules: auditVerifierPolicy(AUDIT_SIGNING_KEY, transitMount) });
  return { addr, port, rootToken, transitMount, transitKey, process: proc, stop: () => proc.stop() };
}
