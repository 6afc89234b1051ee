import type { KmsConfig } from '../../config/kms-config';
import { NO_WORKER_METRICS, type CallMetrics } from '../../metrics/service-metrics';
import { AwsKmsEnvelope } from './aws-kms-envelope';
import type { KmsProvider, KmsProviderKind } from './kms-provider';
import { connectVaultTransit } from '../vault/vault-connection';

/** What providers may use; each takes only its part. */
export interface KmsProviderDeps {
  /** The KMS calls, by route or operation and outcome (the service's KMS request metric). */
  metrics?: CallMetrics;
}

type Factories = { [K in KmsProviderKind]: (config: Extract<KmsConfig, { provider: K }>, deps: KmsProviderDeps) => KmsProvider };

/** One line per provider: adding a provider is its file, a line here and its configuration (config/kms-config.ts). */
const FACTORIES: Factories = {
  'vault-transit': (config, deps) => connectVaultTransit(config.vault, undefined, deps.metrics),
  'aws-kms': (config, deps) => new AwsKmsEnvelope(config.aws, deps.metrics ?? NO_WORKER_METRICS.vault),
};

export function createKmsProvider(config: KmsConfig, deps: KmsProviderDeps = {}): KmsProvider {
  const factory = FACTORIES[config.provider] as (config: KmsConfig, deps: KmsProviderDeps) => KmsProvider;
  return factory(config, deps);
}
