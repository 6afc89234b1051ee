import { z } from 'zod';
import { DatabaseRequestError } from './errors';

/** An id as the service uses them (user, client, pair): 1–256 characters, no NUL (PostgreSQL text refuses it). */
export const databaseId = z
  .string()
  .min(1)
  .max(256)
  .refine((value) => !value.includes('\u0000'), 'must not contain a NUL character');

/**
 * Checks what a repository is given before it reaches PostgreSQL; throws `DatabaseRequestError`
 * naming the fields and the rule they break (zod's messages never repeat the value).
 */
export function validateArguments<T extends z.ZodType>(schema: T, value: unknown, operation: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new DatabaseRequestError(`${operation}: invalid arguments (${describeIssues(result.error)})`);
  return result.data;
}

/**
 * Checks the rows PostgreSQL returned against the shape this code expects (a schema changed under
 * it, a column of another type); throws `DatabaseRequestError` naming row, column and rule, never
 * the stored values.
 */
export function validateRows<T extends z.ZodType>(schema: T, rows: unknown[], operation: string): z.infer<T>[] {
  const result = z.array(schema).safeParse(rows);
  if (!result.success) {
    throw new DatabaseRequestError(`${operation}: the database returned rows of an unexpected shape (${describeIssues(result.error)})`);
  }
  return result.data;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(value)'}: ${issue.message}`)
    .join('; ');
}
