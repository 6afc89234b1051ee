import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { KMSClient, ListAliasesCommand } from '@aws-sdk/client-kms';
import { AwsKmsEnvelope, awsKmsClient, createKeyVersion } from '../adapters/kms/aws-kms-envelope';
import { KmsRequestError } from '../domain/errors';
import { freePortBelow32768 } from './free-port';
import { startProcess, waitUntilAnswers } from './managed-process';
import { launchRestartable, type Restartable } from './restartable-server';
import { toolBinary } from './tool-binaries';

/** What local-kms expects of a client: any credentials, its region and account. */
export const LOCAL_KMS_REGION = 'eu-west-2';
const LOCAL_KMS_TIMEOUT_MS = 10_000;
export const LOCAL_KMS_CREDENTIALS = { accessKeyId: 'local-kms-test', secretAccessKey: 'local-kms-test-not-a-secret' };

/** `restart` starts it again on the same data directory: keys and aliases survive. */
export interface LocalKmsServer extends Restartable {
  endpoint: string;
  port: number;
}

/** The stack's and tests' own client of local-kms, with the workers' timeouts (awsKmsClient). */
export function localKmsClient(endpoint: string): KMSClient {
  return awsKmsClient({ region: LOCAL_KMS_REGION, endpoint, credentials: LOCAL_KMS_CREDENTIALS, timeoutMs: LOCAL_KMS_TIMEOUT_MS });
}

/**
 * local-kms (github.com/nsmithuk/local-kms, a local AWS KMS), from the project's script
 * (scripts/tool-local-kms.sh: the pinned version from the Go module proxy, cached), with its
 * LevelDB in `dataDir` so that a restart keeps every key. It listens on all interfaces (it has no
 * bind-address setting); test material only.
 */
export async function startLocalKms(options: { dataDir: string; logFile: string; port?: number }): Promise<LocalKmsServer> {
  const binary = toolBinary('local-kms');
  const port = options.port ?? (await freePortBelow32768());
  const endpoint = `http://127.0.0.1:${port}`;
  mkdirSync(options.dataDir, { recursive: true });
  const launch = async () => {
    const proc = startProcess('local-kms', binary, [], {
      logFile: options.logFile,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PORT: String(port),
        KMS_REGION: LOCAL_KMS_REGION,
        KMS_DATA_PATH: options.dataDir,
        KMS_SEED_PATH: join(options.dataDir, 'no-seed.yaml'),
      },
    });
    const client = localKmsClient(endpoint);
    try {
      await waitUntilAnswers(`local-kms on ${endpoint}`, () => client.send(new ListAliasesCommand({ Limit: 1 })), 30_000, proc.exited);
    } finally {
      client.destroy();
    }
    return proc;
  };
  return launchRestartable({ endpoint, port }, launch);
}

/** Creates version 1 of the key `keyAlias` (`<keyAlias>/v1`) unless the key has a version already. */
export async function setUpAwsKmsKey(endpoint: string, keyAlias = 'alias/mpc-backup'): Promise<void> {
  const client = localKmsClient(endpoint);
  try {
    const kms = new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint, keyAlias, timeoutMs: 10_000 }, undefined, client);
    const hasVersion = await kms.keyVersions().then(
      () => true,
      (error: unknown) => {
        if (error instanceof KmsRequestError) return false;
        throw error;
      },
    );
    if (!hasVersion) await createKeyVersion(client, keyAlias, 1);
  } finally {
    client.destroy();
  }
}
