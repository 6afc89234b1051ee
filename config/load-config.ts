import { z } from 'zod';
import { ConfigError } from './config-error';

/**
 * Parses `env` with `schema` and runs cross-field checks, collecting every problem before
 * throwing one ConfigError, so an operator fixes all of them in one go.
 */
export function loadConfig<S extends z.ZodType<Record<string, unknown>>>(
  schema: S,
  env: NodeJS.ProcessEnv,
  crossChecks: (parsed: z.infer<S>) => string[],
  /**
   * Checks on the variables as given (set or not), run whether or not the schema accepted them:
   * variables required only in some cases (VAULT_ADDR with KMS_PROVIDER=vault-transit) are named
   * beside the schema's own problems.
   */
  presenceChecks: (raw: Record<string, string>) => string[] = () => [],
): z.infer<S> {
  // Empty variables count as unset, as shells and compose files often leave them empty.
  const cleaned = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) throw new ConfigError([...ConfigError.fromZod(result.error).problems, ...presenceChecks(cleaned)]);
  // A presence check and a cross-check may name the same problem: each is reported once.
  const problems = [...new Set([...presenceChecks(cleaned), ...crossChecks(result.data)])];
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data;
}
