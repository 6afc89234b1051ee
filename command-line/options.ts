import { Command, Option } from 'commander';

/**
 * One command-line option: its flag as commander writes it (`--port <port>` takes a value,
 * `--once` is a switch), its help text, its default, and whether its value is a number.
 */
export interface OptionSpec {
  readonly flag: string;
  readonly description: string;
  readonly default?: string;
  readonly number?: boolean;
}

/** A switch is a boolean; a value is a number or a string, undefined when it has no default and was not given. */
type ValueOf<O extends OptionSpec> = O['flag'] extends `${string}<${string}>`
  ? (O['number'] extends true ? number : string) | (O extends { default: string } ? never : undefined)
  : boolean;

export type OptionValues<T extends Record<string, OptionSpec>> = { [K in keyof T]: ValueOf<T[K]> };

/**
 * Parses the command line against a table of options, so each option is written once: its flag,
 * help and default, and the type its value has in the program (numbers converted with Number(),
 * switches false when absent). `--help` prints and exits as commander does.
 */
export function parseOptions<const T extends Record<string, OptionSpec>>(name: string, specs: T, argv: readonly string[] = process.argv): OptionValues<T> {
  const program = new Command(name);
  const attributes = new Map<string, string>();
  for (const [key, spec] of Object.entries(specs)) {
    const option = new Option(spec.flag, spec.description);
    if (spec.default !== undefined) option.default(spec.default);
    program.addOption(option);
    attributes.set(key, option.attributeName());
  }
  program.parse(argv as string[]);
  const raw = program.opts<Record<string, string | boolean | undefined>>();
  const values = Object.entries(specs).map(([key, spec]) => {
    const value = raw[attributes.get(key)!];
    if (!spec.flag.includes('<')) return [key, value === true];
    return [key, value !== undefined && spec.number ? Number(value) : value];
  });
  return Object.fromEntries(values) as OptionValues<T>;
}
