import type nodeVault from 'node-vault';
import { z } from 'zod';
import { VaultContractError } from '../../domain/errors';
import { describeZodError } from '../http/response-validation';
import type { VaultAuth } from './vault-auth';
import { classifyVaultError } from './vault-transit';

const lookupSelfSchema = z.object({
  data: z.object({
    display_name: z.string().min(1),
    entity_id: z.string().optional().nullable(),
    policies: z.array(z.string()).default([]),
  }),
});

export interface CallerIdentity {
  /** The token's display name (e.g. `token-ops-alice`, `approle`); what the audit records as who. */
  displayName: string;
  entityId?: string;
  policies: string[];
}

/** Who a Vault credential belongs to (`auth/token/lookup-self`), for audit records. */
export class VaultIdentity {
  constructor(
    private readonly client: nodeVault.client,
    private readonly auth: VaultAuth,
  ) {}

  async whoAmI(): Promise<CallerIdentity> {
    this.client.token = await this.auth.token();
    let response: unknown;
    try {
      response = await this.client.tokenLookupSelf();
    } catch (error) {
      throw classifyVaultError(error, 'auth/token/lookup-self');
    }
    const parsed = lookupSelfSchema.safeParse(response);
    if (!parsed.success) throw new VaultContractError(`Vault auth/token/lookup-self returned an unexpected body: ${describeZodError(parsed.error)}`);
    const { display_name, entity_id, policies } = parsed.data.data;
    return { displayName: display_name, ...(entity_id ? { entityId: entity_id } : {}), policies };
  }
}
