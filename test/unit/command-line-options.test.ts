import { describe, expect, it } from 'vitest';
import { parseOptions } from '../../command-line/options';

const SPECS = {
  port: { flag: '--port <port>', description: 'port', default: '4100', number: true },
  host: { flag: '--host <host>', description: 'host', default: '127.0.0.1' },
  rpm: { flag: '--enclave-rpm <n>', description: 'limit', number: true },
  url: { flag: '--webhook-url <url>', description: 'url' },
  open: { flag: '--open-admin', description: 'switch' },
} as const;

const argv = (...args: string[]) => ['node', 'script', ...args];

describe('parseOptions (each option written once: flag, help, default, type)', () => {
  it('gives defaults, numbers as numbers, absent switches as false and absent values as undefined', () => {
    expect(parseOptions('t', SPECS, argv())).toEqual({ port: 4100, host: '127.0.0.1', rpm: undefined, url: undefined, open: false });
  });

  it('reads kebab-case flags into their keys, whatever the key is called', () => {
    const opts = parseOptions('t', SPECS, argv('--port', '7', '--enclave-rpm', '0', '--webhook-url', 'http://x', '--open-admin'));
    expect(opts).toEqual({ port: 7, host: '127.0.0.1', rpm: 0, url: 'http://x', open: true });
  });
});
