import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadApiConfig } from '../../api/config';
import { loadWorkerConfig } from '../../worker/config';
import { loadWebhookConfig } from '../../webhook/config';
import { SEARCH_ATTRIBUTES } from '../../contracts/backup-wallet-api';
import { DEV_DYNAMIC_CONFIG } from '../../stack/temporal-dev-server';
import { NAMESPACE_RETENTION_HOURS, readClusterEnv, SCHEMA_STEPS, TEMPORAL_SERVICES } from '../../stack/temporal-cluster';
import { temporalServerVersions } from '../../stack/tool-binaries';

const ROOT = join(__dirname, '..', '..');
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
  services: Record<
    string,
    {
      image?: string;
      build?: string;
      environment?: Record<string, string>;
      command?: unknown;
      entrypoint?: string[];
      env_file?: string | string[];
      volumes?: string[];
      depends_on?: Record<string, unknown> | string[];
      ports?: unknown[];
    }
  >;
};

const LOOPBACK_HOST_IPS = ['127.0.0.1', '::1', '[::1]'];

/**
 * The host address a `ports:` entry binds, or undefined for all interfaces: short syntax
 * `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/proto]` (or a bare port) and long syntax `{ host_ip, ... }`.
 */
function publishedHostIp(entry: unknown): string | undefined {
  if (typeof entry === 'object' && entry !== null) return (entry as { host_ip?: string }).host_ip || undefined;
  const parts = String(entry).split(':');
  return parts.length > 2 ? parts.slice(0, -2).join(':') : undefined;
}

/** Docker Compose's `${VAR:-default}` and `${VAR:?error}` interpolation, with `given` as the shell. */
function interpolate(value: string, given: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    if (given[name]) return given[name]!;
    if (op === '-') return arg ?? '';
    throw new Error(`${name} must be set: ${arg}`);
  });
}

describe('docker-compose.yml (cannot run here: no Docker engine; parsed and checked instead)', () => {
  it('describes the whole stack', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      [
        'api',
        'postgresql',
        'service-db',
        'simulator',
        'temporal',
        'temporal-history',
        'temporal-matching',
        'temporal-worker',
        'temporal-schema',
        'temporal-namespace',
        'temporal-ui',
        'vault',
        'vault-init',
        'webhook',
        'worker',
      ].sort(),
    );
    expect(compose.services.worker!.build).toBe('.');
  });

  it('gives the worker a configuration the worker accepts', () => {
    const env = Object.fromEntries(
      Object.entries(compose.services.worker!.environment!).map(([k, v]) => [
        k,
        interpolate(String(v), {
          PAYLOAD_CODEC_KEYS: `k1:${Buffer.alloc(32).toString('base64')}`,
          SHARE_SEALING_KEYS: `s1:${Buffer.alloc(32, 1).toString('base64')}`,
        }),
      ]),
    );
    const config = loadWorkerConfig(env);
    expect(config.kms).toMatchObject({ provider: 'vault-transit', vault: { endpoint: 'http://vault:8200' } });
    expect(config.metrics.temporalAddress).toBe('0.0.0.0:9464');
    expect(config.credentials.urlTemplate).toContain('{userId}');
  });

  it('gives the HTTP API a configuration it accepts, published on loopback only, and no token of its own', () => {
    const service = compose.services.api!;
    expect(() => Object.entries(service.environment!).map(([, v]) => interpolate(String(v), { PAYLOAD_CODEC_KEYS: 'k' }))).toThrow(/API_TOKENS must be set/);
    const env = Object.fromEntries(
      Object.entries(service.environment!).map(([k, v]) => [
        k,
        interpolate(String(v), { PAYLOAD_CODEC_KEYS: `k1:${Buffer.alloc(32).toString('base64')}`, API_TOKENS: 'a'.repeat(32) }),
      ]),
    );
    const config = loadApiConfig(env);
    expect(config).toMatchObject({ host: '0.0.0.0', port: 8080, tokens: [{ token: 'a'.repeat(32) }] });
    for (const entry of service.ports ?? []) expect(LOOPBACK_HOST_IPS).toContain(publishedHostIp(entry));
  });

  it('gives the webhook a configuration the webhook accepts, on the service database', () => {
    const env = Object.fromEntries(Object.entries(compose.services.webhook!.environment!).map(([k, v]) => [k, interpolate(String(v), {})]));
    const config = loadWebhookConfig(env);
    expect(config.databaseUrl).toContain('@service-db:5432/mpc_backup');
    expect(config.host).toBe('0.0.0.0');
    for (const entry of compose.services.webhook!.ports ?? []) expect(LOOPBACK_HOST_IPS).toContain(publishedHostIp(entry));
  });

  it('publishes no port of the dev Vault, whose root token is a default', () => {
    expect(compose.services.vault!.ports ?? []).toEqual([]);
  });

  it('refuses to start without a payload codec key', () => {
    expect(() => interpolate(String(compose.services.worker!.environment!.PAYLOAD_CODEC_KEYS), {})).toThrow(/PAYLOAD_CODEC_KEYS/);
  });

  it('keeps the simulator admin API closed and off the host network', () => {
    const simulator = compose.services.simulator!;
    const command = JSON.stringify(simulator.command);
    expect(command).not.toContain('--open-admin');
    // The workers load credentials over the compose network, which is not loopback.
    expect(command).toContain('--open-backend');
    for (const entry of simulator.ports ?? []) expect(LOOPBACK_HOST_IPS).toContain(publishedHostIp(entry));
  });

  it('reads the host address of published ports', () => {
    expect(publishedHostIp('4100:4100')).toBeUndefined();
    expect(publishedHostIp(4100)).toBeUndefined();
    expect(publishedHostIp('0.0.0.0:4100:4100')).toBe('0.0.0.0');
    expect(publishedHostIp('127.0.0.1:4100:4100/tcp')).toBe('127.0.0.1');
    expect(publishedHostIp('[::1]:4100:4100')).toBe('[::1]');
    expect(publishedHostIp({ target: 4100, published: 4100 })).toBeUndefined();
    expect(publishedHostIp({ target: 4100, host_ip: '127.0.0.1' })).toBe('127.0.0.1');
  });

  it('registers every search attribute the workflow upserts', () => {
    const command = JSON.stringify(compose.services['temporal-namespace']!.command);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(command).toContain(`--name ${name} --type ${type}`);
  });

  it('gives the dynamic config file the values the dev stack runs with', () => {
    const file = parse(readFileSync(join(ROOT, 'ops', 'temporal', 'dynamic-config.yaml'), 'utf8')) as Record<string, { value: unknown }[]>;
    expect(Object.fromEntries(Object.entries(file).map(([key, [entry]]) => [key, entry!.value]))).toEqual(DEV_DYNAMIC_CONFIG);
  });
});

/** The compose cluster and the native one (stack/temporal-cluster.ts, `npm run dev -- --cluster`) are the same deployment. */
describe('docker-compose.yml: the same Temporal cluster as the native one', () => {
  const serviceOf = { frontend: 'temporal', history: 'temporal-history', matching: 'temporal-matching', worker: 'temporal-worker' } as const;
  const versions = temporalServerVersions();

  it('runs the pinned server version as four services, one per Temporal service, and no auto-setup image', () => {
    for (const name of TEMPORAL_SERVICES) {
      const service = compose.services[serviceOf[name]]!;
      expect(service.image).toBe(`temporalio/server:${versions.server}`);
      expect(service.entrypoint?.join(' ')).toMatch(new RegExp(`temporal-server start --service ${name}$`));
    }
    for (const job of ['temporal-schema', 'temporal-namespace']) expect(compose.services[job]!.image).toBe(`temporalio/admin-tools:${versions.server}`);
    expect(compose.services['temporal-ui']!.image).toBe(`temporalio/ui:${versions.ui}`);
    expect(Object.values(compose.services).map((service) => service.image ?? '')).not.toContainEqual(expect.stringContaining('auto-setup'));
  });

  it('gives every Temporal service the settings of ops/temporal/cluster.env and the dynamic config file', () => {
    const clusterEnv = readClusterEnv();
    expect(Number(clusterEnv.NUM_HISTORY_SHARDS)).toBeGreaterThan(0);
    expect(clusterEnv.DB).toBe('postgres12');
    for (const name of TEMPORAL_SERVICES) {
      const service = compose.services[serviceOf[name]]!;
      expect([service.env_file].flat()).toContain('ops/temporal/cluster.env');
      // Nothing in its own environment overrides the shared settings.
      for (const key of Object.keys(clusterEnv)) expect(service.environment).not.toHaveProperty(key);
      const mount = service.volumes?.find((volume) => volume.startsWith('./ops/temporal/dynamic-config.yaml:'));
      expect(mount).toBeDefined();
      expect(service.environment?.DYNAMIC_CONFIG_FILE_PATH).toBe(mount!.split(':')[1]);
    }
  });

  it('sets up both databases with the same schema steps', () => {
    const command = JSON.stringify(compose.services['temporal-schema']!.command);
    for (const { database, schemaName } of SCHEMA_STEPS) {
      expect(command).toContain(`--pl ${readClusterEnv().DB} --db ${database} setup-schema -v 0.0`);
      expect(command).toContain(`--pl ${readClusterEnv().DB} --db ${database} update-schema --schema-name ${schemaName}`);
    }
  });

  it('starts the frontend alone first, registers the namespace with the same retention, then history, matching and worker', () => {
    const dependsOn = (name: string) => Object.keys(compose.services[name]!.depends_on ?? {}).concat(Array.isArray(compose.services[name]!.depends_on) ? (compose.services[name]!.depends_on as string[]) : []);
    expect(dependsOn('temporal')).toContain('temporal-schema');
    expect(dependsOn('temporal-namespace')).toContain('temporal');
    expect(dependsOn('temporal-history')).toContain('temporal-namespace');
    expect(dependsOn('temporal-matching')).toContain('temporal-history');
    expect(dependsOn('temporal-worker')).toContain('temporal-matching');
    expect(JSON.stringify(compose.services['temporal-namespace']!.command)).toContain(`--retention ${NAMESPACE_RETENTION_HOURS}h`);
  });
});
