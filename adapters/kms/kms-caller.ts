import type { KmsConfig } from '../../config/kms-config';
import { KmsPermissionError } from '../../domain/errors';
import { AwsKmsEnvelope, awsKmsClient } from './aws-kms-envelope';
import type { KmsProvider, KmsProviderKind } from './kms-provider';
import { connectVaultAsCaller } from '../vault/vault-connection';
import type { CallerIdentity } from '../vault/vault-identity';

/** The KMS with a caller's own credentials, and who those credentials are (for the eject audit). */
export interface KmsCaller {
  transit: KmsProvider;
  identity: { whoAmI(): Promise<CallerIdentity> };
}

type Callers = { [K in KmsProviderKind]: (config: Extract<KmsConfig, { provider: K }>) => KmsCaller };

/**
 * One line per provider, like kms-provider-factory.ts. Vault: `auth/token/lookup-self`. AWS KMS:
 * the access key id the AWS SDK resolved (an identifier, not the secret); the key policy and IAM
 * decide whether it may decrypt, and CloudTrail records the Decrypt calls under it.
 */
const CALLERS: Callers = {
  'vault-transit': (config) => connectVaultAsCaller(config.vault),
  'aws-kms': (config) => {
    const client = awsKmsClient(config.aws);
    return {
      transit: new AwsKmsEnvelope(config.aws, undefined, client),
      identity: {
        async whoAmI() {
          let accessKeyId: string;
          try {
            accessKeyId = (await client.config.credentials()).accessKeyId;
          } catch (error) {
            throw new KmsPermissionError(`no AWS credentials for this caller (${(error as Error).name})`);
          }
          return { displayName: `aws:${accessKeyId}`, policies: [] };
        },
      },
    };
  },
};

export function connectKmsAsCaller(config: KmsConfig): KmsCaller {
  const connect = CALLERS[config.provider] as (config: KmsConfig) => KmsCaller;
  return connect(config);
}
