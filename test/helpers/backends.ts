/** One backend per CPU ISA this binary has and this CPU runs, so every suite covers all of them. */

import type { CpuIsa } from '../../lib/dtypes.js';
import { type Backend, createBackend, info } from '../../lib/index.js';

export function usableIsas(): CpuIsa[] {
  const i = info();
  return i.compiledIsas.filter((isa) => i.supportedIsas.includes(isa));
}

export function backendsPerIsa(threads = 2): { isa: CpuIsa; backend: Backend }[] {
  return usableIsas().map((isa) => ({ isa, backend: createBackend({ cpuIsa: isa, threads }) }));
}
