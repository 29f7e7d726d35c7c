/** A small, strict argument parser: --flag, --key value, --key=value, positionals. */
import { InvalidArgumentError } from '../errors.js';

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: string[], known: Record<string, 'flag' | 'value'>): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = known[name];
    if (!kind) {
      throw new InvalidArgumentError(
        `unknown option --${name}; valid options: ${
          Object.keys(known)
            .map((k) => `--${k}`)
            .join(', ') || 'none'
        }`,
      );
    }
    if (kind === 'flag') {
      if (eq >= 0) throw new InvalidArgumentError(`--${name} takes no value`);
      flags.set(name, true);
    } else if (eq >= 0) {
      flags.set(name, arg.slice(eq + 1));
    } else {
      const value = argv[++i];
      if (value === undefined) throw new InvalidArgumentError(`--${name} needs a value`);
      flags.set(name, value);
    }
  }
  return { positionals, flags };
}

export function intFlag(args: ParsedArgs, name: string, fallback: number, min = 0): number {
  const v = args.flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min) {
    throw new InvalidArgumentError(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}
