import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_OPTIONS } from '../../dev/options';
import { freePortBelow32768 } from '../../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../../stack/managed-process';
import { bashBlocks, forStack, RUNNABLE_DOCS, type DocBlock } from './doc-blocks';

/**
 * The docs tell the truth: every ```bash block of the README, docs/operations.md and
 * docs/restore.md runs, as written, against each dev stack the docs name (`npm run dev`, and
 * `npm run dev -- --self-managed`) of this test's own, in order, and must exit 0. The blocks are written for the default stack; the test moves their ports
 * and `.stack/dev/` files to its stack (doc-blocks.ts). A block that cannot run inside a test
 * (the front door, which installs and runs the tests themselves) says so in a `<!-- docs-test: … -->`
 * comment, and is checked against what runs it instead.
 */
const ROOT = join(__dirname, '..', '..');
const BLOCK_TIMEOUT_MS = 300_000;
/** Files the blocks write in the checkout (eject's --out), removed before and after. */
const WRITTEN = ['user-1-shares.json'];

const blocks: DocBlock[] = RUNNABLE_DOCS.flatMap((doc) => bashBlocks(ROOT, doc));

/** A dev stack of the test's own: `npm run dev` with `flags`, on free ports, in a directory of its own. */
interface Stack {
  devDir: string;
  ports: Map<number, number>;
  process?: ManagedProcess;
}

/** Every `--<name>-port` option of `npm run dev` gets a free port; the docs' default maps to it. */
async function portArgs(ports: Map<number, number>): Promise<string[]> {
  const args: string[] = [];
  for (const option of Object.values(DEV_OPTIONS)) {
    const flag = /^(--[a-z-]+-port) /.exec(option.flag)?.[1];
    if (!flag || !('default' in option)) continue;
    const port = await freePortBelow32768();
    ports.set(Number(option.default), port);
    args.push(flag, String(port));
  }
  return args;
}

function cleanWritten(): void {
  for (const file of WRITTEN) rmSync(join(ROOT, file), { force: true });
}

async function startStack(stack: Stack, flags: string[]): Promise<void> {
  cleanWritten();
  stack.devDir = mkdtempSync(join(tmpdir(), 'mpc-docs-stack-'));
  // As .stack/dev is: PostgreSQL's own user passes through to its data directory (files inside stay 0600).
  chmodSync(stack.devDir, 0o711);
  const child = startProcess('dev stack', process.execPath, ['--import', 'tsx', join(ROOT, 'dev', 'main.ts'), ...flags, ...(await portArgs(stack.ports))], {
    logFile: join(stack.devDir, 'dev.log'),
    cwd: ROOT,
    env: { ...process.env, MPC_DEV_DIR: stack.devDir },
  });
  stack.process = child;
  const ready = async () => readFileSync(child.logFile, 'utf8').includes('Ctrl-C stops everything');
  await waitUntil('the dev stack (dev.log: "Ctrl-C stops everything")', ready, 400_000, child.exited).catch((error: unknown) => {
    throw new Error(`${String(error)}\n--- dev.log (end) ---\n${readFileSync(child.logFile, 'utf8').slice(-3_000)}`);
  });
}

async function stopStack(stack: Stack): Promise<void> {
  await stack.process?.stop(60_000);
  cleanWritten();
  if (stack.devDir) rmSync(stack.devDir, { recursive: true, force: true });
}

/** Runs a block with bash -euo pipefail in the checkout; only PATH, HOME and the stack's directory come from outside (no Temporal or Vault setting of the test's own). */
function runBlock(script: string, devDir: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', MPC_DEV_DIR: devDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), BLOCK_TIMEOUT_MS - 5_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** What a block with a `docs-test` note is checked against, by its note's first word. */
const NOTED: Record<string, (block: DocBlock) => void> = {
  // `npm ci && npm test` is what .ci/run runs (this test among the rest), and `npm run dev` is what beforeAll started.
  'front-door': (block) => {
    const commands = block.script.split('\n').map((line) => line.replace(/#.*$/, '').trim()).filter(Boolean);
    expect(commands).toEqual(['npm ci && npm run dev', 'npm ci && npm test']);
    expect(readFileSync(join(ROOT, '.ci', 'run'), 'utf8')).toContain('npm ci && npm test');
  },
};

it('finds the blocks (each document has at least one)', () => {
  for (const doc of RUNNABLE_DOCS) expect(blocks.filter((block) => block.doc === doc).length, doc).toBeGreaterThan(0);
});

// Both dev stacks the docs name: the default (Portal-Managed) and Self-Managed.
describe.each([
  ['npm run dev', []],
  ['npm run dev -- --self-managed', ['--self-managed']],
] as const)('every shell block of the docs runs as written on `%s`', (_name, flags) => {
  const stack: Stack = { devDir: '', ports: new Map() };
  beforeAll(() => startStack(stack, [...flags]), 420_000);
  afterAll(() => stopStack(stack), 90_000);

  it.each(blocks.map((block) => [`${block.doc}:${block.line}`, block] as const))('%s', async (_at, block) => {
    if (block.note) {
      const check = NOTED[block.note.split(/\s/)[0]!];
      expect(check, `${block.doc}:${block.line}: unknown docs-test note "${block.note}"`).toBeDefined();
      check!(block);
      return;
    }
    const { code, output } = await runBlock(forStack(block.script, stack.ports, stack.devDir), stack.devDir);
    const worker = join(stack.devDir, 'worker.log');
    const context = code === 0 ? '' : `\n--- output ---\n${output}\n--- worker.log (end) ---\n${existsSync(worker) ? readFileSync(worker, 'utf8').slice(-3_000) : ''}`;
    expect(code, `${block.doc}:${block.line} exited ${code}${context}`).toBe(0);
  }, BLOCK_TIMEOUT_MS);
});
