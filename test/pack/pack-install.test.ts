// The published shape of the package: pack it, install the tarball into an empty project with
// install scripts blocked (so only the shipped prebuilt binary can work), then import it both
// as ESM and as CommonJS and decode a small case against a float64 reference computed there.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const work = mkdtempSync(path.join(tmpdir(), 'latentkv-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// A decode of 2 heads over 5 tokens of an f32 cache, checked against an inline float64 computation.
const program = (load: string) => `${load}
const R = 8, P = 2, H = 2, L = 5, bs = 4;
const row = R + P;
const pages = new Float32Array(2 * bs * row).map((_, i) => Math.sin(i * 0.37));
const cache = { dtype: 'f32', blockSize: bs, numBlocks: 2, kvLoraRank: R, ropeDim: P, ropeHeads: 1,
  pages: new Uint8Array(pages.buffer), blockTable: Int32Array.of(1, 0), maxBlocksPerSeq: 2, seqLens: Int32Array.of(L) };
const qLatent = new Float32Array(H * R).map((_, i) => Math.cos(i * 0.11));
const qRope = new Float32Array(H * P).map((_, i) => 0.5 - i * 0.1);
const { out } = lkv.mlaDecodeSync({ cache, numHeads: H, qLatent, qRope, softmaxScale: 0.3 });
const rowOf = (j) => ((j < bs ? 1 : 0) * bs + (j % bs)) * row;
let maxErr = 0;
for (let h = 0; h < H; h++) {
  const s = [];
  for (let j = 0; j < L; j++) {
    let d = 0;
    for (let r = 0; r < R; r++) d += qLatent[h * R + r] * pages[rowOf(j) + r];
    for (let i = 0; i < P; i++) d += qRope[h * P + i] * pages[rowOf(j) + R + i];
    s.push(d * 0.3);
  }
  const m = Math.max(...s), w = s.map((x) => Math.exp(x - m)), z = w.reduce((a, b) => a + b);
  for (let r = 0; r < R; r++) {
    let o = 0;
    for (let j = 0; j < L; j++) o += (w[j] / z) * pages[rowOf(j) + r];
    maxErr = Math.max(maxErr, Math.abs(o - out[h * R + r]));
  }
}
console.log(JSON.stringify({ maxErr, binary: lkv.info().binaryPath, isa: lkv.info().cpuIsa }));
`;

it('installs from the packed tarball with --ignore-scripts and decodes correctly via import and require', () => {
  expect(
    existsSync(path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)),
    'run npm run prebuild first',
  ).toBe(true);
  execFileSync('npm', ['pack', '--pack-destination', work], { cwd: root, stdio: 'pipe' });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  expect(tarball).toBeDefined();
  const project = path.join(work, 'app');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true }),
  );
  execFileSync(
    'npm',
    ['install', '--ignore-scripts', '--no-audit', '--no-fund', path.join(work, tarball as string)],
    { cwd: project, stdio: 'pipe' },
  );
  const installed = path.join(project, 'node_modules', 'latentkv');
  expect(
    existsSync(path.join(installed, 'build')),
    'no build/ folder: the prebuilt binary must be used',
  ).toBe(false);
  writeFileSync(path.join(project, 'esm.mjs'), program("import * as lkv from 'latentkv';"));
  writeFileSync(path.join(project, 'cjs.cjs'), program("const lkv = require('latentkv');"));
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const result = JSON.parse(execFileSync(process.execPath, [file], { cwd: project }).toString());
    expect(result.maxErr, file).toBeLessThan(1e-6);
    expect(result.binary, file).toContain(path.join('node_modules', 'latentkv', 'prebuilds'));
  }
  const cli = execFileSync(path.join(project, 'node_modules', '.bin', 'latentkv'), ['info'], {
    cwd: project,
  }).toString();
  expect(cli).toMatch(/backend\s+cpu/);
});
