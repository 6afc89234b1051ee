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
): z.infer<S> {
  // Empty variables count as unset, as shells and compose files often leave them empty.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) throw ConfigError.fromZod(result.error);
  const problems = crossChecks(result.data);
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data;
}
