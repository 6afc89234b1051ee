/**
 * Replays the recorded histories in test/replay/fixtures (see record-fixtures.ts) against the
 * current workflow code: a change to workflows/ that would break runs already in flight (a
 * different command sequence for the same history) fails here with a DeterminismViolationError.
 * Needs no server: replay runs in-process from the history alone.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { historyFromJSON } from './history-json';
import { Worker, type ReplayResult, type ReplayWorkerOptions } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { backupDataConverter } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { WORKFLOWS_PATH } from '../../worker/workflows-path';

const FIXTURES = join(__dirname, 'fixtures');
const NONDETERMINISTIC_WORKFLOWS = join(__dirname, 'nondeterministic-workflows.ts');

/**
 * Every scenario record-fixtures.ts records; each folder needs at least one fixture of each
 * (`<name>.json` or `<name>-runN.json`). Folders recorded by code before the patches were removed
 * (every workflow is now pinned to its worker deployment version) were moved out: a non-deprecated
 * patch marker without its patched() call fails replay.
 */
const SCENARIOS = [
  'backup-completed',
  'backup-parked-retried',
  'backup-abandoned',
  'backup-cancelled',
  'backup-lost-response',
  'backup-failed-step1',
  'batch-continue-as-new',
  'batch-joined',
  'backup-joined-by-batch',
  'batch-cancelled-update',
  'recovery-completed',
  'backup-fresh-after-recovery',
  'recovery-parked-retried',
  'recovery-abandoned',
  'recovery-failed-find',
  'recovery-orphan-rescan',
  'drill-completed',
  'drill-finding',
  'rotation-completed',
];

interface Fixture {
  /** The folder of the code version that recorded it (fixtures/<short sha>/). */
  version: string;
  name: string;
  workflowId: string;
  workflowType: string;
  recordedFrom: string;
  history: unknown;
}

/** One folder per recorded code version, each with its fixtures and the codec key they were recorded with. */
function versions(): string[] {
  return readdirSync(FIXTURES)
    .filter((entry) => statSync(join(FIXTURES, entry)).isDirectory())
    .sort();
}

function loadFixtures(version: string): Fixture[] {
  return readdirSync(join(FIXTURES, version))
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => {
      const parsed = JSON.parse(readFileSync(join(FIXTURES, version, file), 'utf8')) as Omit<Fixture, 'name' | 'version'>;
      return { ...parsed, version, name: basename(file, '.json') };
    });
}

function replayOptions(workflowsPath: string, replayName: string, version: string): ReplayWorkerOptions {
  const keys = readFileSync(join(FIXTURES, version, 'codec-keys.txt'), 'utf8').trim();
  return {
    workflowsPath,
    replayName,
    // The workers' own data converter: strict codec, failures encoded as in production.
    dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: keys }), { worker: true }),
  };
}

/** Replays every fixture; runReplayHistories is an async generator, so it must be iterated. */
async function replay(workflowsPath: string, replayName: string, version: string, fixtures: Fixture[]) {
  const histories = fixtures.map((fixture) => ({ workflowId: fixture.workflowId, history: historyFromJSON(fixture.history) }));
  const results: { name: string; result: ReplayResult }[] = [];
  for await (const result of Worker.runReplayHistories(replayOptions(workflowsPath, replayName, version), histories)) {
    results.push({ name: fixtures[results.length]!.name, result });
  }
  return results;
}

describe('recorded histories replay against the current workflow code', () => {
  const recorded = versions();

  it('has fixtures of at least one code version', () => {
    expect(recorded.length).toBeGreaterThan(0);
  });

  describe.each(recorded)('recorded by %s', (version) => {
    const fixtures = loadFixtures(version);

    it('has a fixture for every recorded scenario', () => {
      const names = fixtures.map((fixture) => fixture.name);
      for (const scenario of SCENARIOS) {
        expect(
          names.some((name) => name === scenario || new RegExp(`^${scenario}-run\\d+$`).test(name)),
          `a fixture for ${scenario}`,
        ).toBe(true);
      }
    });

    it('replays every fixture without a determinism or replay error', { timeout: 300_000 }, async () => {
      const results = await replay(WORKFLOWS_PATH, `replay-${version}`, version, fixtures);
      expect(results).toHaveLength(fixtures.length);
      const failures = results
        .filter(({ result }) => result.error !== undefined)
        .map(({ name, result }) => `${name} (${result.workflowId}): ${result.error?.name}: ${result.error?.message}`);
      expect(failures).toEqual([]);
      for (const { name, result } of results) {
        expect(result.workflowId, name).toBe(fixtures.find((fixture) => fixture.name === name)!.workflowId);
      }
    });

    it('detects nondeterminism: a backup history against a different backupWallet fails', { timeout: 300_000 }, async () => {
      const backup = fixtures.find((fixture) => fixture.name === 'backup-completed');
      expect(backup).toBeDefined();
      const [only] = await replay(NONDETERMINISTIC_WORKFLOWS, `replay-negative-${version}`, version, [backup!]);
      expect(only).toBeDefined();
      expect(only!.result.error).toBeInstanceOf(DeterminismViolationError);
    });
  });
});
