import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBackend, info, resolveBackendOptions } from '../../lib/index.js';
import { checkBinaryVersion } from '../../lib/native/load-binding.js';

const root = path.resolve(import.meta.dirname, '..', '..');

describe('backend options', () => {
  it('reads LATENTKV_BACKEND, LATENTKV_CPU_ISA and LATENTKV_THREADS, options first', () => {
    const env = { LATENTKV_BACKEND: 'cpu', LATENTKV_CPU_ISA: 'AVX2', LATENTKV_THREADS: '3' };
    expect(resolveBackendOptions({}, env)).toMatchObject({
      backend: 'cpu',
      cpuIsa: 'avx2',
      threads: 3,
      source: { backend: 'env' },
    });
    expect(resolveBackendOptions({ cpuIsa: 'scalar', threads: 1 }, env)).toMatchObject({
      cpuIsa: 'scalar',
      threads: 1,
    });
    expect(resolveBackendOptions({}, {})).toMatchObject({ backend: 'auto', cpuIsa: 'auto', threads: 0 });
  });

  it('rejects unknown environment values, naming the valid ones', () => {
    expect(() => resolveBackendOptions({}, { LATENTKV_BACKEND: 'metal' })).toThrow(
      'LATENTKV_BACKEND=metal is not valid; expected one of auto, cpu, cuda, cann',
    );
    expect(() => resolveBackendOptions({}, { LATENTKV_CPU_ISA: 'sse2' })).toThrow(
      /LATENTKV_CPU_ISA=sse2 is not valid; expected one of auto, scalar/,
    );
    expect(() => resolveBackendOptions({}, { LATENTKV_THREADS: 'many' })).toThrow(
      /LATENTKV_THREADS=many is not valid/,
    );
  });

  it('auto reports why it skipped each candidate before cpu', () => {
    const i = info();
    expect(i.backend).toBe('cpu');
    expect(i.skipped.map((s) => s.backend)).toEqual(['cuda', 'cann']);
    expect(i.skipped[0]!.reason).toMatch(/cuda/);
    expect(i.version).toBe(i.binaryVersion);
    expect(i.compiledIsas).toContain('scalar');
    expect(i.compiledIsas).toContain(i.cpuIsa);
  });

  it('the ISA option caps the dispatch and threads are honoured', () => {
    const b = createBackend({ cpuIsa: 'scalar', threads: 3 });
    expect(b.info()).toMatchObject({ cpuIsa: 'scalar', cpuIsaCap: 'scalar', threads: 3 });
    b.dispose();
  });

  it('the environment reaches a fresh process, and a bad value fails there with the valid values', () => {
    const script = "import('./dist/esm/index.js').then(m => console.log(JSON.stringify(m.info())))";
    const ok = execFileSync(process.execPath, ['-e', script], {
      cwd: root,
      env: { ...process.env, LATENTKV_CPU_ISA: 'scalar', LATENTKV_THREADS: '1' },
    });
    expect(JSON.parse(ok.toString())).toMatchObject({ cpuIsa: 'scalar', threads: 1 });
    let stderr = '';
    try {
      execFileSync(process.execPath, ['-e', script], {
        cwd: root,
        env: { ...process.env, LATENTKV_BACKEND: 'tpu' },
        stdio: 'pipe',
      });
    } catch (e) {
      stderr = String((e as { stderr: Buffer }).stderr);
    }
    expect(stderr).toMatch(/LATENTKV_BACKEND=tpu is not valid; expected one of auto, cpu, cuda, cann/);
  });

  it('a binary from another version is refused with a clear message', () => {
    expect(() =>
      checkBinaryVersion(
        { version: '9.9.9', apiVersion: 1, backends: 'cpu', compiledIsaMask: 1, supportedIsaMask: 1 },
        '0.1.0',
        'x.node',
      ),
    ).toThrow(/native binary x.node is version 9.9.9 but the latentkv JavaScript is 0.1.0/);
  });
});
