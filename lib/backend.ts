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
  NativeBinding,
  NativeDecodeLayerParams,
  NativeDecodeParams,
  NativeGemmParams,
  NativeGqaAppendParams,
  NativeGqaDecodeParams,
  NativePrefillParams,
  NativeProjectAppendParams,
} from './native/binding-types.js';
import { loadCpuBinding } from './native/load-binding.js';
import { loadCudaBinding } from './native/load-cuda.js';
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

/** Files the CANN backend would load from; none ship yet, so auto says so. */
function cannUnavailableReason(): string {
  const { root } = packageRoot();
  const candidates = [
    path.join(root, 'build-cann', 'Release', 'latentkv.node'),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'latentkv-cann.node'),
  ];
  const found = candidates.filter((f) => existsSync(f));
  if (found.length === 0) {
    return `no cann binary in this installation (looked for ${candidates.join(', ')}; build one with npm run build:cann)`;
  }
  return `the cann backend is not implemented in this version (found ${found.join(', ')} but it is not loadable yet)`;
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

  /** @internal */
  _prefillSync(p: NativePrefillParams): void {
    try {
      this.#live().mlaPrefill(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** @internal */
  async _prefill(p: NativePrefillParams): Promise<void> {
    try {
      await this.#live().mlaPrefillAsync(p);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /**
   * @internal c = a w^T (+ bias) on the calling thread (the backend's pool joins in); sync by
   * design, see lib/runtime/linear.ts. Host memory only: a cuda backend throws UnsupportedError.
   */
  _gemmSync(p: NativeGemmParams): void {
    try {
      this.#live().gemm(p);
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
  if (resolved.backend === 'cann') {
    throw new BackendUnavailableError(
      `LATENTKV_BACKEND/backend 'cann' cannot be used: ${cannUnavailableReason()}. Use 'cpu' or 'auto'.`,
    );
  }
  let chosen: { name: 'cpu' | 'cuda'; binding: NativeBinding; path: string } | undefined;
  if (resolved.backend === 'cuda' || resolved.backend === 'auto') {
    // The CUDA addon is its own file, loaded by explicit path after a child-process probe.
    const cuda = loadCudaBinding();
    if (cuda.ok) {
      chosen = { name: 'cuda', binding: cuda.binding, path: cuda.path };
    } else if (resolved.backend === 'cuda') {
      throw new BackendUnavailableError(
        `LATENTKV_BACKEND/backend 'cuda' cannot be used: ${cuda.reason}. Use 'cpu' or 'auto'.`,
      );
    } else {
      skipped.push({ backend: 'cuda', reason: cuda.reason });
    }
  }
  if (!chosen && resolved.backend === 'auto')
    skipped.push({ backend: 'cann', reason: cannUnavailableReason() });
  if (!chosen) {
    const cpu = loadCpuBinding();
    chosen = { name: 'cpu', binding: cpu.binding, path: cpu.path };
  }
  const { binding, path: binaryPath } = chosen;
  let native: NativeBackend;
  try {
    native = new binding.NativeBackend(chosen.name, CPU_ISA_CODE[resolved.cpuIsa], resolved.threads);
  } catch (e) {
    throw fromNativeError(e);
  }
  const n = native.info();
  const build = binding.buildInfo();
  const info: BackendInfo = {
    backend: chosen.name,
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
