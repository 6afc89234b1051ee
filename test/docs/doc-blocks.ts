import { readFileSync } from 'node:fs';

/** The documents whose shell blocks are run against a dev stack, in order (later blocks may use what earlier ones made). */
export const RUNNABLE_DOCS = ['README.md', 'docs/operations.md', 'docs/restore.md'] as const;

/**
 * One fenced `bash` block of a document. `note` is the text of an HTML comment
 * `<!-- docs-test: … -->` on the line before the block, which says how the block is checked when
 * it is not run as written (the front door's `npm ci && npm test`).
 */
export interface DocBlock {
  doc: string;
  line: number;
  script: string;
  note?: string;
}

const FENCE = /^```(\S*)\s*$/;
const NOTE = /^<!--\s*docs-test:\s*(.+?)\s*-->\s*$/;

/** Every ```bash block of `doc` (a path from the repository root), with the line its fence is on. */
export function bashBlocks(root: string, doc: string): DocBlock[] {
  const lines = readFileSync(`${root}/${doc}`, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith('```'));
    if (end < 0) throw new Error(`${doc}:${i + 1}: a code block that is never closed`);
    if (open[1] === 'bash') {
      const note = NOTE.exec(lines[i - 1] ?? '')?.[1];
      blocks.push({ doc, line: i + 1, script: lines.slice(i + 1, end).join('\n'), ...(note ? { note } : {}) });
    }
    i = end;
  }
  return blocks;
}

/**
 * A block as written for the default dev stack, moved to the stack the test runs: its ports
 * (`127.0.0.1:<default>`, `localhost:<default>`) and its files (`.stack/dev/…`).
 */
export function forStack(script: string, ports: ReadonlyMap<number, number>, devDir: string): string {
  let moved = script.replaceAll('.stack/dev/', `${devDir}/`);
  for (const [documented, actual] of ports) {
    moved = moved.replace(new RegExp(`(127\\.0\\.0\\.1|localhost):${documented}(?!\\d)`, 'g'), `$1:${actual}`);
  }
  return moved;
}
