#!/usr/bin/env node
import { main } from '../dist/esm/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    const code = typeof error?.code === 'string' ? ` [${error.code}]` : '';
    process.stderr.write(`latentkv: ${error?.message ?? String(error)}${code}\n`);
    process.exitCode = 1;
  },
);
