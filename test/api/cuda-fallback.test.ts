import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BackendUnavailableError, createBackend } from '../../lib/index.js';
import { loadCudaBinding, probeCudaBinary } from '../../lib/native/load-cuda.js';

// A present-but-unusable CUDA addon (a fake file, or one whose load kills its process) must make
// auto fall back to cpu with the reason, make LATENTKV_BACKEND=cuda fail with it, and never take
// down the host process: the addon is probed in a child process first.
const dir = mkdtempSync(path.join(tmpdir(), 'latentkv-cuda-'));
const saved = process.env.LATENTKV_CUDA_BINARY;

afterEach(() => {
  if (saved === undefined) delete process.env.LATENTKV_CUDA_BINARY;
  else process.env.LATENTKV_CUDA_BINARY = saved;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cuda addon loading', () => {
  it('auto falls back to cpu when the cuda binary cannot be loaded, and says why', () => {
    const fake = path.join(dir, 'latentkv.node');
    writeFileSync(fake, 'not an ELF file');
    process.env.LATENTKV_CUDA_BINARY = fake;
    const b = createBackend({ backend: 'auto' });
    const info = b.info();
    b.dispose();
    expect(info.backend).toBe('cpu');
    expect(info.skipped[0]!.backend).toBe('cuda');
    expect(info.skipped[0]!.reason).toContain(fake);
    expect(info.skipped[0]!.reason).toMatch(/not usable/);
  });

  it('LATENTKV_BACKEND=cuda fails with the reason instead of falling back', () => {
    const fake = path.join(dir, 'broken.node');
    writeFileSync(fake, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0]));
    process.env.LATENTKV_CUDA_BINARY = fake;
    expect(() => createBackend({ backend: 'cuda' })).toThrow(BackendUnavailableError);
    expect(() => createBackend({ backend: 'cuda' })).toThrow(/backend 'cuda' cannot be used: .*broken\.node/);
  });

  it('a binary that kills the process while loading only kills the probe', () => {
    // require() of a .js "binary" runs it: this one dies by a signal, as a broken driver can.
    const crashing = path.join(dir, 'crash.js');
    writeFileSync(crashing, "process.kill(process.pid, 'SIGKILL');\n");
    const probe = probeCudaBinary(crashing);
    expect(probe.ok).toBe(false);
    expect(probe.reason).toMatch(/probe process was killed by SIGKILL/);
    process.env.LATENTKV_CUDA_BINARY = crashing;
    const r = loadCudaBinding();
    expect(r.ok).toBe(false);
    const b = createBackend({ backend: 'auto' });
    expect(b.info().backend).toBe('cpu');
    expect(b.info().skipped[0]!.reason).toMatch(/SIGKILL/);
    b.dispose();
  });

  it('a missing override path is reported as no binary', () => {
    process.env.LATENTKV_CUDA_BINARY = path.join(dir, 'does-not-exist.node');
    const r = loadCudaBinding();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/no cuda binary in this installation .*does-not-exist\.node/);
  });
});
