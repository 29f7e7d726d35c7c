/**
 * Loads the CUDA addon by explicit path. It is a separate file from the CPU addon (the same
 * bindings compiled with the CUDA backend, `npm run build:cuda`), looked for in
 *   $LATENTKV_CUDA_BINARY (when set, the only candidate),
 *   build-cuda/Release/latentkv.node (a source build),
 *   prebuilds/<platform>-<arch>/latentkv-cuda.node (a packaged one).
 * Before the host process loads it, a child process (`node -e`) loads it and creates the cuda
 * backend, so a broken driver or a binary that crashes on load takes down the child, not the
 * host. The outcome is cached per path for the life of the process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { NativeBinding } from './binding-types.js';
import { checkBinaryVersion } from './load-binding.js';
import { packageRoot } from './package-root.js';

const require = createRequire(import.meta.url);

export type CudaLoad =
  | { ok: true; binding: NativeBinding; path: string; device: string }
  | { ok: false; reason: string };

const PROBE_TIMEOUT_MS = 60_000;
const probes = new Map<string, { ok: boolean; reason: string; device: string }>();
const loaded = new Map<string, NativeBinding>();

/** Where a CUDA addon may be, in order. */
export function cudaBinaryCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.LATENTKV_CUDA_BINARY;
  if (override !== undefined && override !== '') return [path.resolve(override)];
  const { root } = packageRoot();
  return [
    path.join(root, 'build-cuda', 'Release', 'latentkv.node'),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'latentkv-cuda.node'),
  ];
}

// Runs in the child: load, check the version, create the backend, report as one JSON line.
const PROBE_SCRIPT = `
const file = process.argv[1];
let out;
try {
  const b = require(file);
  const info = b.buildInfo();
  if (!String(info.backends).split(',').includes('cuda')) {
    out = { ok: false, reason: 'it was built without the CUDA backend (backends: ' + info.backends + ')' };
  } else {
    const nb = new b.NativeBackend('cuda', -1, 0);
    const i = nb.info();
    nb.dispose();
    out = { ok: true, version: info.version, device: i.name };
  }
} catch (e) {
  out = { ok: false, reason: String(e && e.message ? e.message : e) };
}
process.stdout.write('LATENTKV_PROBE ' + JSON.stringify(out) + '\\n');
`;

/** Loads `file` and creates a cuda backend in a child process; never throws. */
export function probeCudaBinary(file: string): { ok: boolean; reason: string; device: string } {
  const cached = probes.get(file);
  if (cached) return cached;
  let result: { ok: boolean; reason: string; device: string };
  const child = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, file], {
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    env: { ...process.env, LATENTKV_BACKEND: 'cpu' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const line = (child.stdout ?? '').split('\n').find((l) => l.startsWith('LATENTKV_PROBE '));
  if (child.error) {
    result = { ok: false, reason: `the probe process failed: ${child.error.message}`, device: '' };
  } else if (line) {
    const r = JSON.parse(line.slice('LATENTKV_PROBE '.length)) as {
      ok: boolean;
      reason?: string;
      version?: string;
      device?: string;
    };
    const expected = packageRoot().version;
    if (r.ok && r.version !== expected) {
      result = {
        ok: false,
        reason: `${file} is version ${r.version} but the latentkv JavaScript is ${expected}; rebuild it (npm run build:cuda)`,
        device: '',
      };
    } else {
      result = { ok: r.ok, reason: r.ok ? '' : `${file} is not usable: ${r.reason}`, device: r.device ?? '' };
    }
  } else {
    const how = child.signal ? `was killed by ${child.signal}` : `exited with code ${child.status}`;
    const stderr = (child.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    result = {
      ok: false,
      reason: `loading ${file} in a probe process ${how} (a broken driver or binary?)${stderr ? `: ${stderr}` : ''}`,
      device: '',
    };
  }
  probes.set(file, result);
  return result;
}

/**
 * The first CUDA addon that exists and passes the probe, loaded into this process; otherwise
 * why none could be used (every candidate's reason).
 */
export function loadCudaBinding(env: NodeJS.ProcessEnv = process.env): CudaLoad {
  const candidates = cudaBinaryCandidates(env);
  const reasons: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    const probe = probeCudaBinary(file);
    if (!probe.ok) {
      reasons.push(probe.reason);
      continue;
    }
    let binding = loaded.get(file);
    if (!binding) {
      try {
        binding = require(file) as NativeBinding;
        checkBinaryVersion(binding.buildInfo(), packageRoot().version, file);
      } catch (e) {
        reasons.push(`${file} passed the probe but failed to load here: ${(e as Error).message}`);
        continue;
      }
      loaded.set(file, binding);
    }
    return { ok: true, binding, path: file, device: probe.device };
  }
  if (reasons.length === 0) {
    return {
      ok: false,
      reason: `no cuda binary in this installation (looked for ${candidates.join(', ')}; build one with npm run build:cuda on a machine with the CUDA toolkit, or set LATENTKV_CUDA_BINARY)`,
    };
  }
  return { ok: false, reason: reasons.join('; ') };
}

/** @internal Forgets cached probe results (tests). */
export function _resetCudaProbes(): void {
  probes.clear();
}
