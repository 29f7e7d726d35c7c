/**
 * Backend choice from options and the environment: LATENTKV_BACKEND, LATENTKV_CPU_ISA and
 * LATENTKV_THREADS, with explicit options taking precedence. Invalid values are errors that
 * name the valid ones; nothing falls back silently.
 */
import { BACKEND_NAMES, type BackendName, CPU_ISAS, type CpuIsa } from './dtypes.js';
import { describe, InvalidArgumentError } from './errors.js';

export interface BackendOptions {
  /** 'auto' (default): cuda, then cann, then cpu, whichever loads first. */
  backend?: BackendName;
  /** A cap on the CPU kernels' ISA; 'auto' (default) picks the best the CPU supports. */
  cpuIsa?: CpuIsa;
  /** Kernel threads; 0 (default) means one per hardware thread. */
  threads?: number;
}

export interface ResolvedBackendOptions {
  backend: BackendName;
  cpuIsa: CpuIsa;
  threads: number;
  /** Where each value came from: 'option', 'env' or 'default'. */
  source: { backend: string; cpuIsa: string; threads: string };
}

const MAX_THREADS = 1024;

function pick<T extends string>(
  value: unknown,
  envName: string,
  valid: readonly T[],
  optionName: string,
  env: NodeJS.ProcessEnv,
): [T, string] {
  if (value !== undefined) {
    if (typeof value !== 'string' || !(valid as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(
        `${optionName}: expected one of ${valid.join(', ')}, got ${describe(value)}`,
      );
    }
    return [value as T, 'option'];
  }
  const raw = env[envName];
  if (raw === undefined || raw === '') return [valid[0] as T, 'default'];
  const v = raw.trim().toLowerCase();
  if (!(valid as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`${envName}=${raw} is not valid; expected one of ${valid.join(', ')}`);
  }
  return [v as T, 'env'];
}

export function resolveBackendOptions(
  options: BackendOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedBackendOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`backend options: expected an object, got ${describe(options)}`);
  }
  const [backend, backendSource] = pick(options.backend, 'LATENTKV_BACKEND', BACKEND_NAMES, 'backend', env);
  const [cpuIsa, isaSource] = pick(options.cpuIsa, 'LATENTKV_CPU_ISA', CPU_ISAS, 'cpuIsa', env);
  let threads = 0;
  let threadsSource = 'default';
  if (options.threads !== undefined) {
    if (!Number.isInteger(options.threads) || options.threads < 0 || options.threads > MAX_THREADS) {
      throw new InvalidArgumentError(
        `threads: expected an integer in 0..${MAX_THREADS} (0 = one per core), got ${describe(options.threads)}`,
      );
    }
    threads = options.threads;
    threadsSource = 'option';
  } else if (env.LATENTKV_THREADS !== undefined && env.LATENTKV_THREADS !== '') {
    const raw = env.LATENTKV_THREADS.trim();
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n > MAX_THREADS) {
      throw new InvalidArgumentError(
        `LATENTKV_THREADS=${env.LATENTKV_THREADS} is not valid; expected an integer in 0..${MAX_THREADS}`,
      );
    }
    threads = n;
    threadsSource = 'env';
  }
  return {
    backend,
    cpuIsa,
    threads,
    source: { backend: backendSource, cpuIsa: isaSource, threads: threadsSource },
  };
}
