import type { KmsProvider } from '../adapters/kms/kms-provider';

/**
 * Checks at start that the configured KMS key exists and is the kind the service needs (each
 * provider's own check: KmsProvider.checkKeyAtStart). A missing or wrong key is a ConfigError; an
 * unreachable KMS, or credentials that may not describe the key, only warn: outages are survivable.
 */
export async function checkKmsKey(kms: Pick<KmsProvider, 'checkKeyAtStart'>, warn: (message: string) => void): Promise<void> {
  await kms.checkKeyAtStart(warn);
}

/** The Vault Transit form of checkKmsKey (the names are the provider's own configuration now). */
export async function checkTransitKey(
  transit: Pick<KmsProvider, 'checkKeyAtStart'>,
  _names: { mount: string; keyName: string },
  warn: (message: string) => void,
): Promise<void> {
  await transit.checkKeyAtStart(warn);
}
