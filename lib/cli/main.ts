/** The `latentkv` command line. */
import { benchCommand } from './bench-command.js';
import { convertCommand } from './convert-command.js';
import { demoCommand } from './demo-command.js';
import { evalCommand } from './eval-command.js';
import { generateCommand } from './generate-command.js';
import { infoCommand } from './info-command.js';

const USAGE = `usage: latentkv <command> [options]

commands:
  demo [--budgets 0.5,0.3125,0.125] [--text FILE] [--quick]
                                     the main job: stories15M (fetched from npm, cached) converted to
                                     MLA at several KV budgets; quality, KV bytes, decode speed, stories
  info [--json]                      backend, CPU ISA, threads and versions in use
  bench [--quick] [--json] [--mtla] [--tpla] [--prefill]
                                     kernel benchmark against this machine's ceilings
  convert <in> <out> [options]       GQA/MHA -> MLA (TransMLA, MHA2MLA); convert --help
  generate <model> --prompt TEXT     stream a continuation (model: stories15M, a llama2.c .bin,
           [--max-tokens N --temperature T --top-k K --top-p P --seed S --cache-dtype D --mla]
                                     or a Hugging Face folder); --bench: decode tokens/s, GQA vs MLA
  eval <model> --text FILE           perplexity; with --reference <model> (or --mla): KL, top-1, KV bytes
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
    case 'demo':
      return await demoCommand(rest);
    case 'convert':
      return await convertCommand(rest);
    case 'generate':
      return await generateCommand(rest);
    case 'eval':
      return await evalCommand(rest);
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
