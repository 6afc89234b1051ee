import { z } from 'zod';

/** Reusable validators for environment variables (all strings on input). */
export const envUrl = z
  .string()
  .trim()
  .refine((value) => /^https?:\/\/[^\s]+$/.test(value) && URL.canParse(value), 'must be an http(s) URL')
  .transform((value) => value.replace(/\/+$/, ''));

export const envInt = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((value) => value >= min && value <= max, `must be a whole number from ${min} to ${max}`);

export const envBool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((value) => ['true', 'false', '1', '0', 'yes', 'no'].includes(value), 'must be true or false')
  .transform((value) => ['true', '1', 'yes'].includes(value));

export const envNonEmpty = z.string().trim().min(1, 'must not be empty');

/** `host:port` as gRPC clients expect it. */
export const envHostPort = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, 'must be host:port, e.g. localhost:7233');

/** An http(s) URL template that must contain `{userId}`. */
export const envUrlTemplate = envNonEmpty.refine(
  (value) => value.includes('{userId}') && /^https?:\/\/\S+$/.test(value),
  'must be an http(s) URL template containing {userId}',
);

/** A header as `Header-Name: value`. */
export const envHeader = z.string().regex(/^[A-Za-z0-9-]+:\s*\S.*$/, 'must look like "Header-Name: value"');

export function toHeader(value: string): { name: string; value: string } {
  const separator = value.indexOf(':');
  return { name: value.slice(0, separator).trim(), value: value.slice(separator + 1).trim() };
}
