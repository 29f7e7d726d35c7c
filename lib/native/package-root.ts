/** Finds the installed package's root folder (where package.json, build/ and prebuilds/ live). */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: { root: string; version: string } | undefined;

export function packageRoot(): { root: string; version: string } {
  if (cached) return cached;
  // lib/native (sources under vitest), dist/esm/native, or dist/cjs (the CJS bundle).
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'latentkv' && typeof pkg.version === 'string') {
        cached = { root: dir, version: pkg.version };
        return cached;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error('latentkv: cannot find the package root (package.json named latentkv)');
    dir = parent;
  }
}
