/** The `latentkv` command line. */
import { benchCommand } from './bench-command.js';
import { infoCommand } from './info-command.js';

const USAGE = `usage: latentkv <command> [options]

commands:
  info [--json]                      backend, CPU ISA, threads and versions in use
  bench [--quick] [--json]           kernel benchmark against this machine's ceilings
  help                               this text

environment: LATENTKV_BACKEND=auto|cpu|cuda|cann  LATENTKV_CPU_ISA=auto|scalar|avx2|avx512|avx512bf16|neon
             LATENTKV_THREADS=N`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'info':
      return infoCommand(rest);
    case 'bench':
      return await benchCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`latentkv: unknown command '${command}'\n\n${USAGE}`);
      return 1;
  }
}
