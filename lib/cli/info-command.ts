/** `latentkv info`: which backend and ISA run, why, and the versions involved. */
import { info } from '../backend.js';
import { parseArgs } from './args.js';

export function infoCommand(argv: string[]): number {
  const args = parseArgs(argv, { json: 'flag' });
  const i = info();
  if (args.flags.has('json')) {
    console.log(JSON.stringify(i, null, 2));
    return 0;
  }
  const lines: [string, string][] = [
    ['backend', `${i.backend} (requested ${i.requested})`],
    ...i.skipped.map((s): [string, string] => [`  skipped ${s.backend}`, s.reason]),
    ['cpu isa', `${i.cpuIsa} (cap ${i.cpuIsaCap})`],
    ['compiled isas', i.compiledIsas.join(', ')],
    ['supported isas', i.supportedIsas.join(', ')],
    ['threads', String(i.threads)],
    ['latentkv', `${i.version} (binary ${i.binaryVersion}, C ABI ${i.apiVersion})`],
    ['binary', i.binaryPath],
    ['node', `${i.node} (N-API ${i.napi ?? '?'}) on ${i.platform}`],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) console.log(`${k.padEnd(width)}  ${v}`);
  return 0;
}
