import { describe, expect, it } from 'vitest';
import { VaultAccessCheck } from '../../adapters/vault/vault-access-check';
import { VaultAccessDeniedError, VaultPermissionError, VaultUnavailableError } from '../../domain/errors';

function setup(answers: (Error | undefined)[]) {
  let now = 0;
  const calls: number[] = [];
  const verdicts: boolean[] = [];
  const transit = {
    encryptBatch: async () => {
      calls.push(now);
      const answer = answers.shift();
      if (answer) throw answer;
      return ['vault:v1:probe'];
    },
  };
  const check = new VaultAccessCheck(transit, 30_000, (denied) => verdicts.push(denied), () => now);
  return { check, calls, verdicts, advance: (ms: number) => (now += ms) };
}

describe('VaultAccessCheck', () => {
  it('asks Vault once per good verdict period, then again', async () => {
    const { check, calls, verdicts, advance } = setup([]);
    await check.assertUsable();
    advance(29_999);
    await check.assertUsable();
    expect(calls).toHaveLength(1);
    advance(1);
    await check.assertUsable();
    expect(calls).toHaveLength(2);
    expect(verdicts).toEqual([false, false]);
  });

  it('a 403 is a retryable VaultAccessDeniedError, reported once as denied, and checked again on the next call', async () => {
    const { check, calls, verdicts } = setup([new VaultPermissionError('transit/encrypt refused (403)'), undefined]);
    const refused = await check.assertUsable().then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(VaultAccessDeniedError);
    expect((refused as VaultAccessDeniedError).retryable).toBe(true);
    expect((refused as Error).message).toContain('asks Portal for nothing');
    await check.assertUsable();
    expect(calls).toHaveLength(2);
    expect(verdicts).toEqual([true, false]);
  });

  it('lets step 1 go on when Vault is down (ENCRYPT waits for it, as before), with no verdict and nothing kept', async () => {
    const { check, calls, verdicts } = setup([new VaultUnavailableError('connection refused'), undefined]);
    await expect(check.assertUsable()).resolves.toBeUndefined();
    expect(verdicts).toEqual([]);
    await check.assertUsable();
    expect(calls).toHaveLength(2);
    expect(verdicts).toEqual([false]);
  });
});
