import type { z } from 'zod';

/** Bad configuration: lists every missing or malformed variable, with what is expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }

  static fromZod(error: z.ZodError): ConfigError {
    return new ConfigError(
      error.issues.map((issue) => {
        const variable = issue.path.join('.') || '(environment)';
        return issue.code === 'invalid_type' && issue.message.includes('undefined')
          ? `${variable} is required`
          : `${variable}: ${issue.message}`;
      }),
    );
  }
}
