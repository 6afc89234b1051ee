import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTemporalKinds, startBenchTemporal, temporalLabel } from '../../bench/bench-temporal';
import { StepAttemptLog } from '../../bench/peers/restate-backup';

describe('bench --temporal', () => {
  it('takes dev, cluster or both, in the order given, each once', () => {
    expect(parseTemporalKinds('dev')).toEqual(['dev']);
    expect(parseTemporalKinds('cluster, dev')).toEqual(['cluster', 'dev']);
    expect(parseTemporalKinds('dev,cluster,dev')).toEqual(['dev', 'cluster']);
  });

  it('refuses an unknown or empty kind', () => {
    expect(() => parseTemporalKinds('cloud')).toThrow(/--temporal: use dev and\/or cluster/);
    expect(() => parseTemporalKinds(' , ')).toThrow(/--temporal/);
  });

  it('refuses dev-server flags on the cluster before starting anything', async () => {
    const flags = { temporal: 'cluster', eagerActivities: 'on', dynamicConfig: 'history.transferProcessorMaxPollRPS=20' } as const;
    await expect(startBenchTemporal(tmpdir(), flags)).rejects.toThrow(/apply to the dev server only/);
    await expect(startBenchTemporal(tmpdir(), { ...flags, dynamicConfig: '', eagerActivities: 'off' })).rejects.toThrow(/apply to the dev server only/);
  });

  it('names what a run ran on', () => {
    expect(temporalLabel({ kind: 'cluster', serverVersion: '1.31.2', historyShards: 16, services: [], postgres: 'PostgreSQL 15' })).toBe('cluster v1.31.2, 16 shards');
    expect(temporalLabel({ kind: 'dev', cli: 'temporal version 1.5.1' })).toBe('dev server (temporal version 1.5.1)');
  });
});

describe("the Restate peer's step-attempt log", () => {
  it('counts each step of each workflow apart, and again from the file after a restart', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'attempts-')), 'step-attempts.log');
    const first = await StepAttemptLog.open(file);
    expect(await first.next('user-1', 'mpcBackup')).toBe(1);
    expect(await first.next('user-1', 'mpcBackup')).toBe(2);
    expect(await first.next('user-1', 'storeCiphertexts')).toBe(1);
    expect(await first.next('user-2', 'mpcBackup')).toBe(1);
    await first.close();
    const restarted = await StepAttemptLog.open(file);
    expect(await restarted.next('user-1', 'mpcBackup')).toBe(3);
    expect(await restarted.next('user-2', 'storeCiphertexts')).toBe(1);
    await restarted.close();
  });
});
