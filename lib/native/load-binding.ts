/**
 * Loads the CPU addon: node-gyp-build looks in build/Release (a source build) and then in
 * prebuilds/<platform>-<arch>/ (what npm install ships), so no compiler or install script is
 * needed. The binary must come from the same package version.
 */
import { createRequire } from 'node:module';
import { BackendUnavailableError, BinaryMismatchError } from '../errors.js';
import type { NativeBinding, NativeBuildInfo } from './binding-types.js';
import { packageRoot } from './package-root.js';

const require = createRequire(import.meta.url);
let loaded: { binding: NativeBinding; path: string } | undefined;

/** Throws BinaryMismatchError unless the binary's version equals the package's. */
export function checkBinaryVersion(info: NativeBuildInfo, expected: string, where: string): void {
  if (info.version !== expected) {
    throw new BinaryMismatchError(
      `the native binary ${where} is version ${info.version} but the latentkv JavaScript is ${expected}; ` +
        'reinstall latentkv or rebuild it (npm rebuild latentkv --build-from-source)',
    );
  }
}

export function loadCpuBinding(): { binding: NativeBinding; path: string } {
  if (loaded) return loaded;
  const { root, version } = packageRoot();
  const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
  let file: string;
  try {
    file = nodeGypBuild.resolve(root);
  } catch (cause) {
    throw new BackendUnavailableError(
      `no latentkv CPU binary for ${process.platform}-${process.arch} (node ${process.version}). ` +
        'Possible solutions: install on linux-x64 where a prebuilt binary ships, or build from source ' +
        'with `npm install --build-from-source` (needs python3, make and a C++17 compiler).',
      { cause },
    );
  }
  let binding: NativeBinding;
  try {
    binding = require(file) as NativeBinding;
  } catch (cause) {
    throw new BackendUnavailableError(
      `the latentkv CPU binary ${file} failed to load: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  checkBinaryVersion(binding.buildInfo(), version, file);
  loaded = { binding, path: file };
  return loaded;
}
