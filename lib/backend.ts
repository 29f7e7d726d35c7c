/**
 * Backends: loading, selection and the kernel entry points. A Backend owns one native backend
 * handle (its thread pool and ISA choice); `getBackend()` returns a shared default one.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  type BackendOptions,
  type ResolvedBackendOptions,
  resolveBackendOptions,
} from './backend-options.js';
import { CPU_ISA_CODE, type CpuIsa, isaFromCode, isasInMask } from './dtypes.js';
import { BackendUnavailableError, DisposedError, fromNativeError } from './errors.js';
import type {
  NativeBackend,
  NativeDecodeLayerParams,
  NativeDecodeParams,
  NativeGqaAppendParams,
  NativeGqaDecodeParams,
  NativeProjectAppendParams,
} from './native/binding-types.js';
import { loadCpuBinding } from './native/load-binding.js';
import { packageRoot } from './native/package-root.js';

export type { BackendOptions, ResolvedBackendOptions };

export interface BackendInfo {
  /** The backend that runs the kernels. */
  backend: 'cpu' | 'cuda' | 'cann';
  /** How it was chosen, and why `auto` skipped each candidate before it. */
  requested: string;
  skipped: { backend: string; reason: string }[];
  /** CPU ISA the kernels run with, the cap asked for, and what the binary and CPU have. */
  cpuIsa: CpuIsa;
  cpuIsaCap: CpuIsa;
  compiledIsas: CpuIsa[];
  supportedIsas: CpuIsa[];
  threads: number;
  version: string;
  binaryVersion: string;
  apiVersion: number;
  binaryPath: string;
  node: string;
  napi: string | undefined;
  platform: string;
}

/** Files a GPU backend would load from; none of them ship yet, so auto says so. */
function gpuBinaryCandidates(name: 'cuda' | 'cann'): string[] {
  const { root } = packageRoot();
  return [
    path.join(root, `build-${name}`, 'Release', 'latentkv.node'),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, `latentkv-${name}.node`),
  ];
}

function gpuUnavailableReason(name: 'cuda' | 'cann'): string {
  const found = gpuBinaryCandidates(name).filter((f) => existsSync(f));
  if (found.length === 0) {
    return `no ${name} binary in this installation (looked for ${gpuBinaryCandidates(name).join(', ')}; build one with npm run build:${name})`;
  }
  return `the ${name} backend is not implemented in this version (found ${found.join(', ')} but it is not loadable yet)`;
}

export class Backend {
  #native: NativeBackend | undefined;
  readonly #info: BackendInfo;

  /** Use createBackend() or getBackend(). @internal */
  constructor(native: NativeBackend, info: BackendInfo) {
    this.#native = native;
    this.#info = info;
  }

  get disposed(): boolean {
    return this.#native === undefined;
  }

  info(): BackendInfo {
    this.#live();
    return { ...this.#info, skipped: [...this.#info.skipped] };
  }

  /** @internal Validated params only (lib/mla/*). */
  _decodeSync(p: NativeDecodeParams): void {
    try {
      this.#live().mlaDecode(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  async _decode(p: NativeDecodeParams): Promise<void> {
    try {
      await this.#live().mlaDecodeAsync(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  _projectAppendSync(p: NativeProjectAppendParams): void {
    try {
      this.#live().projectAppend(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  async _projectAppend(p: NativeProjectAppendParams): Promise<void> {
    try {
      await this.#live().projectAppendAsync(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  _gqaDecodeSync(p: NativeGqaDecodeParams): void {
    try {
      this.#live().gqaDecode(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  async _gqaDecode(p: NativeGqaDecodeParams): Promise<void> {
    try {
      await this.#live().gqaDecodeAsync(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  _gqaAppendSync(p: NativeGqaAppendParams): void {
    try {
      this.#live().gqaAppend(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  _decodeLayerSync(p: NativeDecodeLayerParams): void {
    try {
      this.#live().mlaDecodeLayer(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  async _decodeLayer(p: NativeDecodeLayerParams): Promise<void> {
    try {
      await this.#live().mlaDecodeLayerAsync(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** Frees the native backend (its threads). Calls already running finish first. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(): NativeBackend {
    if (!this.#native) throw new DisposedError('this Backend');
    return this.#native;
  }
}

/**
 * Creates a backend. Options override LATENTKV_BACKEND / LATENTKV_CPU_ISA / LATENTKV_THREADS.
 * @throws InvalidArgumentError for an unknown value, BackendUnavailableError when a backend
 * or ISA asked for by name cannot run here.
 */
export function createBackend(options: BackendOptions = {}): Backend {
  const resolved = resolveBackendOptions(options);
  const skipped: { backend: string; reason: string }[] = [];
  if (resolved.backend === 'cuda' || resolved.backend === 'cann') {
    throw new BackendUnavailableError(
      `LATENTKV_BACKEND/backend '${resolved.backend}' cannot be used: ${gpuUnavailableReason(resolved.backend)}. ` +
        "Use 'cpu' or 'auto'.",
    );
  }
  if (resolved.backend === 'auto') {
    for (const name of ['cuda', 'cann'] as const)
      skipped.push({ backend: name, reason: gpuUnavailableReason(name) });
  }
  const { binding, path: binaryPath } = loadCpuBinding();
  let native: NativeBackend;
  try {
    native = new binding.NativeBackend('cpu', CPU_ISA_CODE[resolved.cpuIsa], resolved.threads);
  } catch (e) {
    throw fromNativeError(e);
  }
  const n = native.info();
  const build = binding.buildInfo();
  const info: BackendInfo = {
    backend: 'cpu',
    requested: `${resolved.backend} (${resolved.source.backend})`,
    skipped,
    cpuIsa: isaFromCode(n.cpuIsa),
    cpuIsaCap: resolved.cpuIsa,
    compiledIsas: isasInMask(n.compiledIsaMask),
    supportedIsas: isasInMask(n.supportedIsaMask),
    threads: n.threads,
    version: packageRoot().version,
    binaryVersion: build.version,
    apiVersion: n.apiVersion,
    binaryPath,
    node: process.version,
    napi: process.versions.napi,
    platform: `${process.platform}-${process.arch}`,
  };
  return new Backend(native, info);
}

let defaultBackend: Backend | undefined;

/** The shared backend chosen by the environment; created on first use. */
export function getBackend(): Backend {
  if (!defaultBackend || defaultBackend.disposed) defaultBackend = createBackend();
  return defaultBackend;
}

/** What the default backend is and why: backend, ISAs, threads, versions. */
export function info(): BackendInfo {
  return getBackend().info();
}
