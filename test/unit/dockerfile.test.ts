import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');

/** Top-level folders of every project file an entry point reaches through relative imports. */
function foldersReachedFrom(entry: string): Set<string> {
  const seen = new Set<string>();
  const folders = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    folders.add(relative(ROOT, file).split('/')[0]!);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), match[1]!);
      for (const candidate of [`${target}.ts`, join(target, 'index.ts')]) {
        try {
          readFileSync(candidate);
          visit(candidate);
          break;
        } catch {
          // try the next form
        }
      }
    }
  };
  visit(join(ROOT, entry));
  return folders;
}

describe('Dockerfile (cannot be built here: no Docker engine; checked instead)', () => {
  const copied = new Set(
    [...readFileSync(join(ROOT, 'Dockerfile'), 'utf8').matchAll(/^COPY (\S+) \.\/\S*$/gm)].map((match) => match[1]!.replace(/\/$/, '')),
  );

  it.each(['worker/main.ts', 'webhook/main.ts', 'simulator/main.ts', 'client/cli.ts', 'api/main.ts'])('copies every folder %s imports', (entry) => {
    const missing = [...foldersReachedFrom(entry)].filter((folder) => !copied.has(folder));
    expect(missing).toEqual([]);
  });
});
