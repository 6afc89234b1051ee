import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { freePortBelow32768 } from './free-port';
import { startProcess, waitUntil, waitUntilAnswers } from './managed-process';
import { launchRestartable, type Restartable } from './restartable-server';
import { toolBinary } from './tool-binaries';
import { createAuditSigningKey, workerPolicy } from './vault-policies';

/** `restart` starts it again on the same storage and unseals it: keys survive. */
export interface VaultServer extends Restartable {
  addr: string;
  port: number;
  rootToken: string;
}

type VaultClient = ReturnType<typeof nodeVault>;

function adminClient(addr: string, token?: string): VaultClient {
  return nodeVault({ endpoint: addr, ...(token ? { token } : {}), debug: () => undefined } as nodeVault.VaultOptions);
}

/**
 * A Vault server in production mode with file storage: it survives restarts (unlike a dev server,
 * whose keys live in memory), so restarting it is a fair fault. Initialised with one unseal key,
 * kept beside the data in `dataDir` (test material only).
 */
export async function startVaultServer(options: { dataDir: string; logFile: string; port?: number }): Promise<VaultServer> {
  const binary = toolBinary('vault');
  const port = options.port ?? (await freePortBelow32768());
  const addr = `http://127.0.0.1:${port}`;
  mkdirSync(join(options.dataDir, 'storage'), { recursive: true });
  const configFile = join(options.dataDir, 'vault.hcl');
  writeFileSync(
    configFile,
    [
      `storage "file" { path = "${join(options.dataDir, 'storage')}" }`,
      `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  tls_disable = true\n}`,
      'disable_mlock = true',
      `api_addr = "${addr}"`,
      '',
    ].join('\n'),
  );
  const initFile = join(options.dataDir, 'init.json');

  const launch = async () => {
    const proc = startProcess('vault', binary, ['server', `-config=${configFile}`], {
      logFile: options.logFile,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    const admin = adminClient(addr);
    await waitUntilAnswers(`Vault server on ${addr}`, () => admin.initialized(), 60_000, proc.exited);
    if (!existsSync(initFile)) {
      const init = (await admin.init({ secret_shares: 1, secret_threshold: 1 })) as { keys: string[]; root_token: string };
      writeFileSync(initFile, JSON.stringify({ unsealKey: init.keys[0], rootToken: init.root_token }), { mode: 0o600 });
    }
    const { unsealKey } = JSON.parse(readFileSync(initFile, 'utf8')) as { unsealKey: string };
    await admin.unseal({ key: unsealKey });
    await waitUntil(
      'Vault to unseal and become active',
      async () => {
        const health = (await admin.health()) as { sealed?: boolean; standby?: boolean };
        return health.sealed === false && health.standby === false;
      },
      30_000,
      proc.exited,
    );
    return proc;
  };

  const server = await launchRestartable({ addr, port }, launch);
  const { rootToken } = JSON.parse(readFileSync(initFile, 'utf8')) as { rootToken: string };
  // Onto the same object: `restart` updates its `process`.
  return Object.assign(server, { rootToken });
}

/** Enables Transit (if needed) and creates the derived AES-256-GCM96 key the service uses and the audit chain's ed25519 key. */
export async function setUpTransit(addr: string, rootToken: string, keyName = 'mpc-backup', mount = 'transit'): Promise<void> {
  const admin = adminClient(addr, rootToken);
  const mounts = (await admin.mounts()) as Record<string, unknown>;
  if (!(`${mount}/` in mounts) && !(`${mount}/` in ((mounts.data as Record<string, unknown>) ?? {}))) {
    await admin.mount({ mount_point: mount, type: 'transit' });
  }
  await admin.write(`${mount}/keys/${keyName}`, { type: 'aes256-gcm96', derived: true });
  await createAuditSigningKey(admin, mount);
}

/**
 * An AppRole whose tokens may only encrypt and decrypt with the service's Transit key, with the
 * given token TTLs; returns the role id and a secret id for the worker.
 */
export async function setUpAppRole(
  addr: string,
  rootToken: string,
  /** `policy`: the role's HCL (default: the workers' policy for the key, stack/vault-policies.ts). */
  options: { role?: string; keyName?: string; tokenTtl: string; tokenMaxTtl: string; policy?: string },
): Promise<{ roleId: string; secretId: string }> {
  const admin = adminClient(addr, rootToken);
  const role = options.role ?? 'mpc-backup-worker';
  const keyName = options.keyName ?? 'mpc-backup';
  const auths = (await admin.auths()) as Record<string, unknown>;
  if (!('approle/' in auths) && !('approle/' in ((auths.data as Record<string, unknown>) ?? {}))) {
    await admin.enableAuth({ mount_point: 'approle', type: 'approle' });
  }
  await admin.addPolicy({ name: role, rules: options.policy ?? workerPolicy(keyName) });
  await admin.write(`auth/approle/role/${role}`, {
    token_policies: [role],
    token_ttl: options.tokenTtl,
    token_max_ttl: options.tokenMaxTtl,
  });
  const roleId = ((await admin.read(`auth/approle/role/${role}/role-id`)) as { data: { role_id: string } }).data.role_id;
  const secretId = ((await admin.write(`auth/approle/role/${role}/secret-id`, {})) as { data: { secret_id: string } }).data
    .secret_id;
  return { roleId, secretId };
}
