#!/usr/bin/env node
// Builds dist/: ESM + declarations with tsc, then a CommonJS bundle of the same code with
// esbuild (import.meta.url is mapped to the bundle's own file URL).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
rmSync(path.join(root, 'dist'), { recursive: true, force: true });
execFileSync(bin('tsc'), ['-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });

const cjs = path.join(root, 'dist', 'cjs');
mkdirSync(cjs, { recursive: true });
const esbuild = await import('esbuild');
await esbuild.build({
  entryPoints: [path.join(root, 'dist', 'esm', 'index.js')],
  outfile: path.join(cjs, 'index.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  packages: 'external',
  define: { 'import.meta.url': '__latentkvModuleUrl' },
  banner: { js: "const __latentkvModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
writeFileSync(path.join(cjs, 'index.d.cts'), "export * from '../esm/index.js';\n");
console.log('built dist/esm (tsc) and dist/cjs/index.cjs (esbuild)');
