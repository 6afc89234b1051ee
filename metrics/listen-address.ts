import { isIP } from 'node:net';
import { z } from 'zod';

/** Where a metrics endpoint listens: `ip:port` (IPv6 in brackets). */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses `127.0.0.1:9464`, `0.0.0.0:9464` or `[::1]:9464`. An IP literal, not a host name: the
 * Temporal runtime's exporter binds a socket address, and one format for every metrics variable
 * avoids surprises.
 */
export function parseListenAddress(value: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(value.trim());
  if (!match) return undefined;
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (isIP(host) === 0 || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

export function formatListenAddress(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** A metrics endpoint's variable (the endpoint is off when the variable is unset). */
export const envListenAddress = z
  .string()
  .trim()
  .refine(
    (value) => parseListenAddress(value) !== undefined,
    'must be ip:port, e.g. 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464 (an IP address, not a host name)',
  )
  .transform((value) => parseListenAddress(value)!);
