import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCliConfig, loadClientConfig } from '../../client/config';
import { loadEjectCollectConfig } from '../../client/eject-config';
import { loadCopyRepairConfig } from '../../client/copy-repair-config';
import { loadCodecServerConfig } from '../../config/codec-server-config';
import { ConfigError } from '../../config/config-error';
import { loadWorkerConfig } from '../../worker/config';
import { loadWebhookConfig, PORTAL_SOURCE_IPS } from '../../webhook/config';

const KEY = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
const SEAL = `s1:${Buffer.alloc(32, 9).toString('base64')}`;
const VALID = {
  PAYLOAD_CODEC_KEYS: KEY,
  SHARE_SEALING_KEYS: SEAL,
  VAULT_ADDR: 'http://127.0.0.1:8200',
  VAULT_TOKEN: 'dev-token',
  CREDENTIALS_URL: 'http://127.0.0.1:4100/backend/users/{userId}/credentials',
};

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadWorkerConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('worker configuration', () => {
  it('accepts a minimal valid environment and fills in defaults', () => {
    const config = loadWorkerConfig(VALID);
    expect(config.temporal).toMatchObject({ address: 'localhost:7233', namespace: 'default', taskQueue: 'mpc-backup' });
    expect(config.portal).toMatchObject({ enclaveUrl: 'https://mpc-client.portalhq.io', storeCipherTextMethod: 'POST' });
    expect(config.kms.provider === 'vault-transit' && config.kms.vault.auth).toEqual({ kind: 'token', token: 'dev-token' });
  });

  it('runs as a Worker Deployment version: mpc-backup and <package version>-<commit> by default, overridable, switchable off', () => {
    const commit = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], { encoding: 'utf8' }).trim();
    expect(loadWorkerConfig(VALID).versioning).toEqual({ enabled: true, deploymentName: 'mpc-backup', buildId: `0.1.0-${commit}` });
    expect(loadWorkerConfig({ ...VALID, TEMPORAL_DEPLOYMENT_NAME: 'backups-eu', TEMPORAL_BUILD_ID: '0.2.0-3fa9c1e' }).versioning).toEqual({
      enabled: true,
      deploymentName: 'backups-eu',
      buildId: '0.2.0-3fa9c1e',
    });
    expect(loadWorkerConfig({ ...VALID, TEMPORAL_WORKER_VERSIONING: 'off' }).versioning).toEqual({ enabled: false });
    const found = problems({ ...VALID, TEMPORAL_DEPLOYMENT_NAME: 'mpc.backup', TEMPORAL_BUILD_ID: 'v1:x', PAYLOAD_CODEC_KEYS: 'nonsense' }).join('\n');
    for (const expected of ['TEMPORAL_DEPLOYMENT_NAME', 'TEMPORAL_BUILD_ID', 'PAYLOAD_CODEC_KEYS']) expect(found).toContain(expected);
    expect(problems({ ...VALID, TEMPORAL_WORKER_VERSIONING: 'maybe' }).join()).toContain('TEMPORAL_WORKER_VERSIONING: must be on or off');
  });

  it('KMS_PROVIDER=aws-kms: needs AWS_REGION instead of Vault, and names every AWS problem with the others at once', () => {
    const { VAULT_ADDR: _addr, VAULT_TOKEN: _token, ...noVault } = VALID;
    const aws = { ...noVault, KMS_PROVIDER: 'aws-kms', AWS_REGION: 'eu-west-2', AWS_KMS_ENDPOINT: 'http://127.0.0.1:8210' };
    expect(loadWorkerConfig(aws).kms).toEqual({ provider: 'aws-kms', aws: { region: 'eu-west-2', endpoint: 'http://127.0.0.1:8210', keyAlias: 'alias/mpc-backup', timeoutMs: 10_000 } });
    expect(loadWorkerConfig({ ...aws, AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 's3cr3t' }).kms).toMatchObject({ aws: { credentials: { accessKeyId: 'AKIA1', secretAccessKey: 's3cr3t' } } });
    const found = problems({ ...noVault, KMS_PROVIDER: 'aws-kms', AWS_KMS_KEY_ALIAS: 'mpc-backup', PAYLOAD_CODEC_KEYS: undefined }).join('\n');
    for (const expected of ['AWS_REGION is required', 'AWS_KMS_KEY_ALIAS', 'PAYLOAD_CODEC_KEYS']) expect(found).toContain(expected);
    expect(found).not.toContain('VAULT_ADDR');
    expect(problems({ ...aws, AWS_ACCESS_KEY_ID: 'AKIA1' }).join()).toContain('must be set together');
    expect(problems({ ...aws, KMS_PROVIDER: 'gcp-kms' }).join()).toContain('KMS_PROVIDER: must be vault-transit or aws-kms');
    expect(problems({ ...aws, AWS_KMS_KEY_ALIAS: 'alias/aws/ebs' }).join()).toContain('AWS-managed alias');
  });

  it('lists every missing variable at once', () => {
    const found = problems({});
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringContaining('PAYLOAD_CODEC_KEYS'),
        expect.stringContaining('SHARE_SEALING_KEYS'),
        expect.stringContaining('VAULT_ADDR'),
        expect.stringContaining('CREDENTIALS_URL'),
      ]),
    );
  });

  it.each([
    ['TEMPORAL_ADDRESS', 'not an address', 'host:port'],
    ['PORTAL_TIMEOUT_MS', 'fast', 'whole number'],
    ['PORTAL_STORE_METHOD', 'PUT', 'POST or PATCH'],
    ['PORTAL_API_URL', 'ftp://portal', 'http(s) URL'],
    ['VAULT_ADDR', 'vault:8200', 'http(s) URL'],
    ['CREDENTIALS_URL', 'http://backend/users', '{userId}'],
    ['CREDENTIALS_AUTH_HEADER', 'no colon here', 'Header-Name: value'],
    ['PAYLOAD_CODEC_KEYS', 'k1:tooshort', '32 bytes'],
    ['PAYLOAD_CODEC_ACTIVE_KEY_ID', 'k9', 'not a key id'],
    ['SHARE_SEALING_KEYS', 's1:tooshort', '32 bytes'],
    ['SHARE_SEALING_ACTIVE_KEY_ID', 's9', 'not a key id'],
    ['BATCH_SOURCE_ALLOWED_ORIGINS', 'https://backend.example.com/users', 'no path'],
    ['TEMPORAL_TLS', 'maybe', 'true or false'],
    ['TEMPORAL_TLS_CLIENT_CERT_PATH', '/nonexistent/cert.pem', 'TEMPORAL_TLS_CLIENT_KEY_PATH must be set together'],
    ['TEMPORAL_TLS_CERT_PATH', '/etc/hostname', 'is now TEMPORAL_TLS_CLIENT_CERT_PATH'],
    ['TEMPORAL_CONFIG_FILE', '/nonexistent/temporal.toml', 'cannot read file'],
    ['LOG_LEVEL', 'loud', 'trace, debug'],
  ])('names %s when it is malformed', (name, value, hint) => {
    const found = problems({ ...VALID, [name]: value });
    expect(found.join('\n')).toContain(name);
    expect(found.join('\n')).toContain(hint);
  });

  it('requires a Vault token or a complete AppRole pair', () => {
    expect(problems({ ...VALID, VAULT_TOKEN: undefined }).join()).toContain('VAULT_TOKEN is required');
    expect(problems({ ...VALID, VAULT_TOKEN: undefined, VAULT_ROLE_ID: 'r' }).join()).toContain('must be set together');
    expect(loadWorkerConfig({ ...VALID, VAULT_TOKEN: undefined, VAULT_ROLE_ID: 'r', VAULT_SECRET_ID: 's' }).kms).toMatchObject({ vault: { auth: { kind: 'approle' } } });
  });

  it('refuses a sealing key that is also a payload codec key: clients hold those', () => {
    const reused = `s1:${KEY.split(':')[1]}`;
    expect(problems({ ...VALID, SHARE_SEALING_KEYS: reused }).join()).toContain('SHARE_SEALING_KEYS must not reuse a key of PAYLOAD_CODEC_KEYS');
  });

  it('lets batches fetch user pages only from allowed origins: by default the credentials source’s', () => {
    expect(loadWorkerConfig(VALID).batchSourceOrigins).toEqual(['http://127.0.0.1:4100']);
    const config = loadWorkerConfig({ ...VALID, BATCH_SOURCE_ALLOWED_ORIGINS: 'https://a.example.com, https://b.example.com:8443' });
    expect(config.batchSourceOrigins).toEqual(['https://a.example.com', 'https://b.example.com:8443']);
  });

  it('seals the audit chain with the Vault of the KMS and the key audit-chain by default; intervals checked together', () => {
    expect(loadWorkerConfig(VALID).audit).toEqual({
      signer: expect.objectContaining({ endpoint: 'http://127.0.0.1:8200', mount: 'transit', keyName: 'audit-chain', auth: { kind: 'token', token: 'dev-token' } }),
      sealIntervalMs: 60_000,
      verifyIntervalMs: 300_000,
      maxUnsealedAgeMs: 900_000,
    });
    expect(loadWorkerConfig({ ...VALID, AUDIT_SIGNING_KEY: 'audit-eu' }).audit.signer?.keyName).toBe('audit-eu');
    expect(problems({ ...VALID, AUDIT_SIGNING_KEY: 'bad key!' }).join('\n')).toMatch(/AUDIT_SIGNING_KEY.*must be a Transit key name/);
    expect(problems({ ...VALID, AUDIT_SEAL_INTERVAL_MS: '600000', AUDIT_MAX_UNSEALED_AGE_MS: '900000' })).toEqual([
      'AUDIT_MAX_UNSEALED_AGE_MS must be more than twice AUDIT_SEAL_INTERVAL_MS, or a healthy chain would fail verification between two seals',
    ]);
  });

  it('Portal’s rate limits are shared through the company database: both limits, with DATABASE_URL', () => {
    expect(loadWorkerConfig(VALID).portalLimits).toBeUndefined();
    expect(problems({ ...VALID, PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: '50' }).join('\n')).toContain('go together: set both');
    expect(problems({ ...VALID, PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: '50', PORTAL_CLIENT_REQUESTS_PER_MINUTE: '200' }).join('\n')).toContain(
      'DATABASE_URL is required with PORTAL_*_REQUESTS_PER_MINUTE',
    );
    expect(problems({ ...VALID, PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: '1', PORTAL_CLIENT_REQUESTS_PER_MINUTE: 'many' }).join('\n')).toMatch(
      /PORTAL_ENCLAVE_REQUESTS_PER_MINUTE[\s\S]*PORTAL_CLIENT_REQUESTS_PER_MINUTE/,
    );
    const config = loadWorkerConfig({
      ...VALID,
      PORTAL_ENCLAVE_REQUESTS_PER_MINUTE: '50',
      PORTAL_CLIENT_REQUESTS_PER_MINUTE: '200',
      DATABASE_URL: 'postgres://mpc:pw@127.0.0.1:5432/mpc',
    });
    expect(config.portalLimits).toEqual({ enclavePerMinute: 50, clientPerMinute: 200 });
  });

  it('Self-Managed mode needs the company database and a store of the company’s own', () => {
    expect(loadWorkerConfig(VALID).mode).toBe('portal-managed');
    const found = problems({ ...VALID, BACKUP_MODE: 'self-managed' }).join('\n');
    expect(found).toContain('DATABASE_URL is required when BACKUP_MODE=self-managed');
    expect(found).toContain('set CIPHERTEXT_STORE=postgres or http');
    const selfManaged = loadWorkerConfig({ ...VALID, BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: 'postgres://u:p@db:5432/x' });
    expect(selfManaged).toMatchObject({ mode: 'self-managed', stores: [{ kind: 'postgres' }], databaseUrl: 'postgres://u:p@db:5432/x' });
  });

  it('picks the ciphertext store from CIPHERTEXT_STORE, and names what the http store needs', () => {
    expect(loadWorkerConfig(VALID).stores).toEqual([{ kind: 'portal' }]);
    expect(problems({ ...VALID, CIPHERTEXT_STORE: 'http' }).join()).toContain('CIPHERTEXT_HTTP_WRITE_URL is required');
    expect(problems({ ...VALID, CIPHERTEXT_STORE: 's3' }).join()).toContain('CIPHERTEXT_STORE');
    const seed = 'https://b.example/users/{userId}/user-backup-share';
    expect(problems({ ...VALID, CIPHERTEXT_STORE: 'http', CIPHERTEXT_HTTP_WRITE_URL: seed }).join()).toContain('CIPHERTEXT_HTTP_ONE_RECORD_PER_USER=true');
    const http = loadWorkerConfig({ ...VALID, CIPHERTEXT_STORE: 'http', CIPHERTEXT_HTTP_WRITE_URL: seed, CIPHERTEXT_HTTP_ONE_RECORD_PER_USER: 'true', CIPHERTEXT_HTTP_AUTH_HEADER: 'Authorization: Bearer x' });
    expect(http.stores[0]).toMatchObject({ kind: 'http', readUrl: seed, authHeader: { name: 'Authorization', value: 'Bearer x' } });
    const perPair = `${seed}?pair={pairId}`;
    expect(loadWorkerConfig({ ...VALID, CIPHERTEXT_STORE: 'http', CIPHERTEXT_HTTP_WRITE_URL: perPair }).stores[0]).toMatchObject({ readUrl: perPair });
    expect(problems({ ...VALID, CIPHERTEXT_STORE: 'http', CIPHERTEXT_HTTP_WRITE_URL: perPair, CIPHERTEXT_HTTP_READ_URL: seed }).join()).toContain('both contain {pairId}');
  });

  it('CIPHERTEXT_STORES keeps a copy in each store, in order; every problem of the list is named at once', () => {
    const db = 'postgres://u:p@db:5432/x';
    expect(loadWorkerConfig({ ...VALID, CIPHERTEXT_STORES: 'portal, postgres', DATABASE_URL: db }).stores).toEqual([{ kind: 'portal' }, { kind: 'postgres' }]);
    expect(loadWorkerConfig({ ...VALID, CIPHERTEXT_STORES: 'postgres', DATABASE_URL: db }).stores).toEqual([{ kind: 'postgres' }]);
    const found = problems({ ...VALID, CIPHERTEXT_STORES: 'portal,s3,postgres,portal,http' });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringContaining('unknown store "s3"'),
        expect.stringContaining('names portal more than once'),
        expect.stringContaining('DATABASE_URL is required when CIPHERTEXT_STORES includes postgres'),
        expect.stringContaining('CIPHERTEXT_HTTP_WRITE_URL is required when CIPHERTEXT_STORES includes http'),
      ]),
    );
    expect(problems({ ...VALID, CIPHERTEXT_STORE: 'portal', CIPHERTEXT_STORES: 'portal,postgres', DATABASE_URL: db }).join()).toContain('not both');
    expect(problems({ ...VALID, CIPHERTEXT_STORES: ' , ' }).join()).toContain('unknown store ""');
    const selfManaged = problems({ ...VALID, BACKUP_MODE: 'self-managed', CIPHERTEXT_STORES: 'postgres,portal', DATABASE_URL: db }).join();
    expect(selfManaged).toContain('CIPHERTEXT_STORES without portal');
    expect(loadCopyRepairConfig({ ...VALID, CIPHERTEXT_STORES: 'postgres,portal', DATABASE_URL: db }).stores.map((store) => store.kind)).toEqual(['postgres', 'portal']);
  });

  it('never repeats a secret value in its messages', () => {
    const secret = 'super-secret-token-value';
    const found = problems({ ...VALID, PAYLOAD_CODEC_KEYS: `k1:${secret}`, CREDENTIALS_AUTH_HEADER: secret });
    expect(found.join('\n')).not.toContain(secret);
  });

  it('the client needs only Temporal and the codec keys', () => {
    expect(loadClientConfig({ PAYLOAD_CODEC_KEYS: KEY }).codecKeys.activeKeyId).toBe('k1');
    expect(() => loadClientConfig({})).toThrow(/PAYLOAD_CODEC_KEYS/);
  });

  it('the CLI without settings points to the dev stack’s settings when a dev stack wrote them, and only then', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dev-stack-'));
    const devEnv = join(dir, 'client.env');
    const message = (load: () => unknown) => {
      try {
        load();
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    };
    expect(message(() => loadCliConfig({}, devEnv))).toContain('PAYLOAD_CODEC_KEYS: is required');
    expect(message(() => loadCliConfig({}, devEnv))).not.toContain('backup:dev');
    writeFileSync(devEnv, 'PAYLOAD_CODEC_KEYS=x\n');
    expect(message(() => loadCliConfig({}, devEnv))).toContain('PAYLOAD_CODEC_KEYS: is required');
    expect(message(() => loadCliConfig({}, devEnv))).toContain(`run \`npm run backup:dev -- <command>\``);
    expect(loadCliConfig({ PAYLOAD_CODEC_KEYS: KEY }, devEnv).codecKeys.activeKeyId).toBe('k1');
  });
});

describe('the worker process with bad configuration', () => {
  it('exits with status 2 and a message naming each variable to fix', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'worker', 'main.ts')], {
      env: { PATH: process.env.PATH, VAULT_ADDR: 'not-a-url', PORTAL_TIMEOUT_MS: 'soon' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('invalid configuration');
    for (const name of ['VAULT_ADDR', 'PORTAL_TIMEOUT_MS', 'PAYLOAD_CODEC_KEYS', 'SHARE_SEALING_KEYS', 'CREDENTIALS_URL']) {
      expect(result.stderr).toContain(name);
    }
  });
});

describe('eject collect configuration', () => {
  const collectProblems = (env: NodeJS.ProcessEnv) => {
    try {
      loadEjectCollectConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  it('needs only the database (no Vault token, KMS or Portal: the workers decrypted), every problem in one message', () => {
    expect(collectProblems({ LOG_LEVEL: 'loud' })).toEqual([
      'LOG_LEVEL: must be trace, debug, info, warn or error',
      'DATABASE_URL is required: the sealed release waits in the company database (eject_releases)',
    ]);
    expect(collectProblems({ DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' })).toEqual([]);
  });
});

describe('webhook configuration', () => {
  const WEBHOOK = {
    WEBHOOK_SECRETS: 'whsec-0123456789abcdef',
    DATABASE_URL: 'postgres://svc:pw@127.0.0.1:5432/mpc_backup',
    VAULT_ADDR: 'http://127.0.0.1:8200',
    VAULT_TOKEN: 'dev-token',
  };
  const webhookProblems = (env: NodeJS.ProcessEnv): string[] => {
    try {
      loadWebhookConfig(env);
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
  };

  it('accepts a minimal environment: loopback, port 4300, under Portal’s 10-second budget', () => {
    expect(loadWebhookConfig(WEBHOOK)).toMatchObject({ host: '127.0.0.1', port: 4300, deadlineMs: 8_000, secrets: ['whsec-0123456789abcdef'] });
    expect(loadWebhookConfig({ ...WEBHOOK, WEBHOOK_SECRETS: 'whsec-new-0123456789, whsec-old-0123456789' }).secrets).toHaveLength(2);
    expect(loadWebhookConfig({ ...WEBHOOK, WEBHOOK_ALLOWED_SOURCE_IPS: PORTAL_SOURCE_IPS.join(',') }).allowedSourceIps).toEqual([...PORTAL_SOURCE_IPS]);
  });

  it.each([
    ['WEBHOOK_SECRETS', 'short', 'at least 16'],
    ['WEBHOOK_ALLOWED_SOURCE_IPS', 'portal.example.com', 'IP addresses'],
    ['WEBHOOK_DEADLINE_MS', '10000', 'whole number from 500 to 9500'],
    ['DATABASE_URL', 'mysql://x', 'postgres://'],
  ])('names %s when it is malformed, without repeating its value', (name, value, hint) => {
    const found = webhookProblems({ ...WEBHOOK, [name]: value }).join('\n');
    expect(found).toContain(name);
    expect(found).toContain(hint);
  });

  it('refuses a non-loopback bind without a source allowlist, unless a proxy is said to enforce it', () => {
    const open = webhookProblems({ ...WEBHOOK, WEBHOOK_HOST: '0.0.0.0' }).join('\n');
    expect(open).toContain('WEBHOOK_ALLOWED_SOURCE_IPS');
    expect(open).toContain('WEBHOOK_SOURCE_CHECKED_BY_PROXY');
    expect(webhookProblems({ ...WEBHOOK, WEBHOOK_HOST: '0.0.0.0', WEBHOOK_ALLOWED_SOURCE_IPS: PORTAL_SOURCE_IPS.join(',') })).toEqual([]);
    expect(webhookProblems({ ...WEBHOOK, WEBHOOK_HOST: '0.0.0.0', WEBHOOK_SOURCE_CHECKED_BY_PROXY: 'true' })).toEqual([]);
  });

  it('lists every missing variable at once', () => {
    const found = webhookProblems({}).join('\n');
    for (const name of ['WEBHOOK_SECRETS', 'DATABASE_URL', 'VAULT_ADDR']) expect(found).toContain(name);
  });
});

describe('Temporal connection settings (@temporalio/envconfig)', () => {
  const profileFile = () => {
    const dir = mkdtempSync(join(tmpdir(), 'temporal-profile-'));
    const file = join(dir, 'temporal.toml');
    writeFileSync(
      file,
      ['[profile.default]', 'address = "default.example:7233"', '', '[profile.prod]', 'address = "prod.tmprl.example:7233"', 'namespace = "payments.a1b2c"', 'api_key = "profile-api-key"', ''].join('\n'),
    );
    return file;
  };

  it('reads a profile from the TOML client config file, and TEMPORAL_* variables override it', () => {
    const file = profileFile();
    const prod = loadClientConfig({ PAYLOAD_CODEC_KEYS: VALID.PAYLOAD_CODEC_KEYS, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' });
    expect(prod.temporal).toMatchObject({ address: 'prod.tmprl.example:7233', namespace: 'payments.a1b2c' });
    expect(prod.temporal.connection).toMatchObject({ address: 'prod.tmprl.example:7233', apiKey: 'profile-api-key', tls: true });
    const overridden = loadClientConfig({ PAYLOAD_CODEC_KEYS: VALID.PAYLOAD_CODEC_KEYS, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'other' });
    expect(overridden.temporal.namespace).toBe('other');
    const defaults = loadClientConfig({ PAYLOAD_CODEC_KEYS: VALID.PAYLOAD_CODEC_KEYS, TEMPORAL_CONFIG_FILE: file });
    expect(defaults.temporal).toMatchObject({ address: 'default.example:7233', namespace: 'default', taskQueue: 'mpc-backup' });
  });

  // Temporal Cloud (ops/temporal/README.md): a namespace endpoint with an API key, or with mTLS.
  it('connects a worker to Temporal Cloud with an API key profile: TLS on, the key sent, the namespace from the profile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'temporal-cloud-'));
    const file = join(dir, 'temporal.toml');
    writeFileSync(
      file,
      ['[profile.cloud]', 'address = "us-east-1.aws.api.temporal.io:7233"', 'namespace = "mpc-backup.a1b2c"', 'api_key = "cloud-api-key-for-test"', ''].join('\n'),
    );
    const config = loadWorkerConfig({ ...VALID, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' });
    expect(config.temporal).toMatchObject({ address: 'us-east-1.aws.api.temporal.io:7233', namespace: 'mpc-backup.a1b2c' });
    expect(config.temporal.connection).toMatchObject({ apiKey: 'cloud-api-key-for-test', tls: true });
  });

  it('connects a worker to Temporal Cloud with an mTLS profile: the client certificate pair read from its files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'temporal-cloud-mtls-'));
    const file = join(dir, 'temporal.toml');
    writeFileSync(join(dir, 'client.pem'), '-----BEGIN CERTIFICATE-----\ntest-cert\n-----END CERTIFICATE-----\n');
    writeFileSync(join(dir, 'client.key'), '-----BEGIN PRIVATE KEY-----\ntest-key\n-----END PRIVATE KEY-----\n');
    writeFileSync(
      file,
      [
        '[profile.cloud-mtls]',
        'address = "mpc-backup.a1b2c.tmprl.cloud:7233"',
        'namespace = "mpc-backup.a1b2c"',
        '[profile.cloud-mtls.tls]',
        `client_cert_path = "${join(dir, 'client.pem')}"`,
        `client_key_path = "${join(dir, 'client.key')}"`,
        '',
      ].join('\n'),
    );
    const config = loadWorkerConfig({ ...VALID, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud-mtls' });
    expect(config.temporal).toMatchObject({ address: 'mpc-backup.a1b2c.tmprl.cloud:7233', namespace: 'mpc-backup.a1b2c' });
    const tls = config.temporal.connection.tls as { clientCertPair?: { crt: Uint8Array; key: Uint8Array } };
    expect(Buffer.from(tls.clientCertPair!.crt).toString()).toContain('test-cert');
    expect(Buffer.from(tls.clientCertPair!.key).toString()).toContain('test-key');
    expect(config.temporal.connection).not.toHaveProperty('apiKey');
  });

  it('names a profile that is not in the file as a configuration error', () => {
    expect(() => loadClientConfig({ PAYLOAD_CODEC_KEYS: VALID.PAYLOAD_CODEC_KEYS, TEMPORAL_CONFIG_FILE: profileFile(), TEMPORAL_PROFILE: 'staging' })).toThrow(ConfigError);
    expect(() => loadClientConfig({ PAYLOAD_CODEC_KEYS: VALID.PAYLOAD_CODEC_KEYS, TEMPORAL_CONFIG_FILE: profileFile(), TEMPORAL_PROFILE: 'staging' })).toThrow(
      /Temporal client profile .*Profile 'staging' not found/,
    );
  });
});

describe('codec server configuration', () => {
  const codecProblems = (env: NodeJS.ProcessEnv): string[] => {
    try {
      loadCodecServerConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  it('decodes only by default, on loopback without tokens', () => {
    expect(loadCodecServerConfig({ PAYLOAD_CODEC_KEYS: KEY })).toMatchObject({ encode: false, tokens: [], host: '127.0.0.1' });
  });

  it('refuses a token list that is set but blank, as it would otherwise ask for no token', () => {
    for (const blank of [' , ', ',,', '   ']) {
      expect(codecProblems({ PAYLOAD_CODEC_KEYS: KEY, CODEC_SERVER_TOKENS: blank })).toEqual([
        expect.stringContaining('CODEC_SERVER_TOKENS is set but holds no token'),
      ]);
    }
  });

  it('requires tokens off loopback and whenever it encodes, and reports both at once', () => {
    expect(codecProblems({ PAYLOAD_CODEC_KEYS: KEY, CODEC_SERVER_HOST: '0.0.0.0', CODEC_SERVER_ENCODE: 'true' })).toEqual([
      expect.stringContaining('required when CODEC_SERVER_HOST is not loopback'),
      expect.stringContaining('CODEC_SERVER_ENCODE=true needs CODEC_SERVER_TOKENS'),
    ]);
    expect(loadCodecServerConfig({ PAYLOAD_CODEC_KEYS: KEY, CODEC_SERVER_HOST: '0.0.0.0', CODEC_SERVER_ENCODE: 'true', CODEC_SERVER_TOKENS: 't1, t2' })).toMatchObject({
      encode: true,
      tokens: ['t1', 't2'],
    });
  });
});
