/**
 * Conversion speed on a synthetic model with Llama-3.2-1B's shape (issue 5 item 7), a program:
 *   npx vite-node test/convert/speed-1b.ts [dir=/tmp/llama1b-synthetic] [samples=128] [length=256]
 * writes the random BF16 checkpoint if the folder is missing, random calibration tokens beside it,
 * then runs `latentkv convert <dir> <dir>-mla --calib-tokens ...` (run it under /usr/bin/time -v
 * for the peak memory).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { convertCommand } from '../../lib/cli/convert-command.js';
import { LLAMA_3_2_1B_SHAPE, writeSyntheticLlama } from './synthetic-llama.js';

// Prefix every progress line with the seconds since start, to see which phase dominates.
const started = performance.now();
const write = process.stderr.write.bind(process.stderr);
process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
  write(
    typeof chunk === 'string' ? `[${((performance.now() - started) / 1000).toFixed(1)} s] ${chunk}` : chunk,
    ...(rest as []),
  )) as typeof process.stderr.write;
const dir = process.argv[2] ?? '/tmp/llama1b-synthetic';
const samples = Number(process.argv[3] ?? 128);
const length = Number(process.argv[4] ?? 256);
let t = performance.now();
if (!existsSync(dir)) {
  await writeSyntheticLlama(dir, LLAMA_3_2_1B_SHAPE);
  console.log(`wrote ${dir} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
let s = 12345;
const rand = (): number => {
  s = (s * 1103515245 + 12345) % 2147483648;
  return s / 2147483648;
};
const lines = Array.from({ length: samples }, () =>
  [1, ...Array.from({ length: length - 1 }, () => Math.floor(rand() * LLAMA_3_2_1B_SHAPE.vocab))].join(' '),
);
const tokens = `${dir}.calib-tokens.txt`;
await writeFile(tokens, `${lines.join('\n')}\n`);
t = performance.now();
const code = await convertCommand([
  dir,
  `${dir}-mla`,
  '--calib-tokens',
  tokens,
  '--overwrite',
  ...process.argv.slice(5),
]);
console.log(
  `convert exit ${code}, ${((performance.now() - t) / 1000).toFixed(1)} s for ${samples} x ${length} calibration tokens`,
);
