#!/usr/bin/env node
// Prints parts of native/sources.json for binding.gyp's <!@(...) expansions:
//   native-sources.cjs list core cpu bindings   -> source paths
//   native-sources.cjs isa-sources avx2          -> that ISA's sources
//   native-sources.cjs isa-flags avx2            -> that ISA's compiler flags
//   native-sources.cjs isa-defines x64           -> LKV_WITH_<ISA> for ISAs with sources on arch
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const spec = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'native', 'sources.json'), 'utf8'));
const [command, ...args] = process.argv.slice(2);
let out = [];
switch (command) {
  case 'list':
    out = args.flatMap((group) => spec[group] ?? []);
    break;
  case 'isa-sources':
    out = spec.isa[args[0]]?.sources ?? [];
    break;
  case 'isa-flags':
    out = spec.isa[args[0]]?.flags ?? [];
    break;
  case 'isa-defines':
    out = Object.entries(spec.isa)
      .filter(([, v]) => v.arch === args[0] && v.sources.length > 0)
      .map(([name]) => `LKV_WITH_${name.toUpperCase()}`);
    break;
  default:
    console.error(`unknown command ${command}`);
    process.exit(1);
}
console.log(out.join(' '));
