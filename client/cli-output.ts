/** How every `backup` command prints its result: indented JSON on stdout (scripts parse it; people read it). */
export function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
