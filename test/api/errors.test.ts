// Bad input of every kind gets a typed error with a stable code, and leaves caller data as it was.
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  createBackend,
  DisposedError,
  InvalidArgumentError,
  LatentCache,
  mlaDecode,
  mlaDecodeSync,
  projectAppendSync,
} from '../../lib/index.js';
import { makeDecodeCase } from '../helpers/decode-cases.js';

const backend = createBackend({ threads: 1 });
afterAll(() => backend.dispose());

function decodeArgs() {
  const c = makeDecodeCase(
    { qLen: 1, numHeads: 4, R: 16, P: 4, ropeHeads: 1, blockSize: 8, dtype: 'f32', seqLens: [10, 3] },
    1,
  );
  const out = new Float32Array(2 * 4 * 16).fill(7);
  return {
    c,
    args: {
      cache: c.view,
      numHeads: 4,
      qLatent: c.qLatent,
      qRope: c.qRope,
      softmaxScale: 0.25,
      out,
      backend,
    },
  };
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(InvalidArgumentError);
  expect((thrown as InvalidArgumentError).code).toBe('ERR_LATENTKV_INVALID_ARGUMENT');
  expect((thrown as Error).message).toMatch(pattern);
}

describe('mlaDecode rejects bad input', () => {
  const cases: [string, (a: ReturnType<typeof decodeArgs>['args']) => object, RegExp][] = [
    [
      'wrong qLatent length',
      (a) => ({ ...a, qLatent: new Float32Array(5) }),
      /qLatent: expected 128 elements/,
    ],
    [
      'wrong qLatent dtype',
      (a) => ({ ...a, qLatent: new Float64Array(128) }),
      /qLatent: expected a Float32Array/,
    ],
    ['missing qRope', (a) => ({ ...a, qRope: undefined }), /qRope/],
    [
      'numHeads not an integer',
      (a) => ({ ...a, numHeads: 2.5 }),
      /numHeads: expected an integer >= 1, got 2.5/,
    ],
    [
      'non-finite scale',
      (a) => ({ ...a, softmaxScale: Number.NaN }),
      /softmaxScale: expected a finite number, got NaN/,
    ],
    ['infinite scale', (a) => ({ ...a, softmaxScale: Number.POSITIVE_INFINITY }), /softmaxScale/],
    [
      'missing scale',
      (a) => ({ ...a, softmaxScale: undefined }),
      /softmaxScale: expected a finite number, got undefined/,
    ],
    ['wrong out length', (a) => ({ ...a, out: new Float32Array(3) }), /out: expected 128 elements/],
    [
      'block id out of range',
      (a) => ({
        ...a,
        cache: { ...a.cache, blockTable: a.cache.blockTable.map((v, i) => (i === 0 ? 999 : v)) },
      }),
      /blockTable\[0\]\[0\]: expected a page id in 0\.\./,
    ],
    [
      'negative block id in use',
      (a) => ({
        ...a,
        cache: { ...a.cache, blockTable: a.cache.blockTable.map((v, i) => (i === 0 ? -1 : v)) },
      }),
      /blockTable\[0\]\[0\]/,
    ],
    [
      'sequence longer than its blocks',
      (a) => ({ ...a, cache: { ...a.cache, seqLens: Int32Array.of(10, 1000) } }),
      /seqLens\[1\].*longer than its blocks/,
    ],
    [
      'negative length',
      (a) => ({ ...a, cache: { ...a.cache, seqLens: Int32Array.of(-1, 3) } }),
      /seqLens\[0\]/,
    ],
    [
      'pages too short',
      (a) => ({ ...a, cache: { ...a.cache, pages: a.cache.pages.subarray(1) } }),
      /cache.pages: expected \d+ bytes/,
    ],
    [
      'unknown cache dtype',
      (a) => ({ ...a, cache: { ...a.cache, dtype: 'f64' } }),
      /cache.dtype: expected one of f32, f16, bf16, int8, fp8_e4m3, got "f64"/,
    ],
    [
      'block size out of range',
      (a) => ({ ...a, cache: { ...a.cache, blockSize: 512 } }),
      /cache.blockSize: expected an integer in 1..256/,
    ],
    [
      'odd rope dim',
      (a) => ({ ...a, cache: { ...a.cache, ropeDim: 3 } }),
      /cache.ropeDim: expected an even integer/,
    ],
    [
      'heads not divisible by rope heads',
      (a) => {
        const c2 = makeDecodeCase(
          { qLen: 1, numHeads: 4, R: 16, P: 4, ropeHeads: 2, blockSize: 8, dtype: 'f32', seqLens: [10, 3] },
          2,
        );
        return { ...a, numHeads: 3, cache: c2.view };
      },
      /numHeads \(3\) must be a multiple of cache.ropeHeads \(2\)/,
    ],
    ['out aliasing qLatent', (a) => ({ ...a, out: a.qLatent }), /must not share memory/],
    ['not an object', () => 42 as unknown as object, /mlaDecode args: expected an options object, got 42/],
  ];

  it.each(cases)('%s', (_name, mutate, pattern) => {
    const { c, args } = decodeArgs();
    const pagesBefore = c.view.pages.slice();
    const bad = mutate(args) as Parameters<typeof mlaDecodeSync>[0];
    expectInvalid(() => mlaDecodeSync(bad), pattern);
    expect(args.out.every((v) => v === 7)).toBe(true);
    expect(c.view.pages).toEqual(pagesBefore);
  });

  it('the async variant rejects before doing any work', async () => {
    const { args } = decodeArgs();
    await expect(mlaDecode({ ...args, softmaxScale: Number.NaN })).rejects.toThrow(InvalidArgumentError);
    expect(args.out.every((v) => v === 7)).toBe(true);
  });

  it('native validation is a second line of defence with the same error type', () => {
    // Bypass lib/ validation to show the binding and native layers refuse bad params too.
    const { args } = decodeArgs();
    const bad = { ...args, cache: { ...args.cache, seqLens: Int32Array.of(10, 1000) } };
    const internal = backend as unknown as { _decodeSync(p: object): void };
    let thrown: unknown;
    try {
      internal._decodeSync({
        batch: 2,
        qLen: 1,
        numHeads: 4,
        kvLoraRank: 16,
        ropeDim: 4,
        ropeHeads: 1,
        blockSize: 8,
        numBlocks: bad.cache.numBlocks,
        maxBlocksPerSeq: bad.cache.maxBlocksPerSeq,
        cacheDtype: 0,
        softmaxScale: 0.25,
        qLatent: bad.qLatent,
        qRope: bad.qRope,
        cache: bad.cache.pages,
        blockTable: bad.cache.blockTable,
        seqLens: bad.cache.seqLens,
        out: bad.out,
        lse: undefined,
      });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect((thrown as Error).message).toMatch(/seq_lens\[1\] = 1000/);
    expect(args.out.every((v) => v === 7)).toBe(true);
    // A buffer shorter than the dimensions say is refused by the binding before native code runs.
    expect(() =>
      internal._decodeSync({
        ...bad,
        batch: 2,
        qLen: 1,
        numHeads: 4,
        kvLoraRank: 16,
        ropeDim: 4,
        ropeHeads: 1,
        blockSize: 8,
        numBlocks: 100000,
        maxBlocksPerSeq: 4,
        cacheDtype: 0,
        softmaxScale: 1,
        blockTable: new Int32Array(8),
        seqLens: Int32Array.of(0, 0),
        cache: new Uint8Array(8),
      }),
    ).toThrow(/cache holds 8 bytes/);
  });
});

describe('projectAppend rejects bad input', () => {
  const base = () => {
    const cache = {
      dtype: 'bf16' as const,
      blockSize: 4,
      numBlocks: 2,
      kvLoraRank: 8,
      ropeDim: 4,
      ropeHeads: 1,
      pages: new Uint8Array(8 * 12 * 2).fill(3),
    };
    return {
      cache,
      hidden: new Float32Array(2 * 16).fill(1),
      hiddenSize: 16,
      weight: new Float32Array(12 * 16).fill(0.5),
      rope: { style: 'interleaved' as const },
      positions: Int32Array.of(0, 1),
      slotMapping: Int32Array.of(0, 1),
      backend,
    };
  };
  const cases: [string, (a: ReturnType<typeof base>) => object, RegExp][] = [
    [
      'hidden not a multiple of hiddenSize',
      (a) => ({ ...a, hidden: new Float32Array(17) }),
      /not a multiple of hiddenSize 16/,
    ],
    [
      'weight of the wrong shape',
      (a) => ({ ...a, weight: new Float32Array(10) }),
      /weight: expected 192 elements/,
    ],
    ['weight dtype mismatch', (a) => ({ ...a, weightDtype: 'bf16' }), /weight: expected a Uint16Array/],
    [
      'slot out of range',
      (a) => ({ ...a, slotMapping: Int32Array.of(0, 8) }),
      /slotMapping\[1\]: expected a slot in 0..7/,
    ],
    ['slot written twice', (a) => ({ ...a, slotMapping: Int32Array.of(3, 3) }), /written twice/],
    ['negative position', (a) => ({ ...a, positions: Int32Array.of(0, -4) }), /positions\[1\]/],
    [
      'bad rope style',
      (a) => ({ ...a, rope: { style: 'neox' } }),
      /rope.style: expected one of interleaved, half-split, got "neox"/,
    ],
    ['bad rope theta', (a) => ({ ...a, rope: { style: 'interleaved', theta: Number.NaN } }), /rope.theta/],
    [
      'llama3 scaling without fields',
      (a) => ({ ...a, rope: { style: 'half-split', scaling: { type: 'llama3', factor: 8 } } }),
      /rope.scaling.lowFreqFactor/,
    ],
    [
      'norm weight of the wrong size',
      (a) => ({ ...a, normWeight: new Float32Array(3) }),
      /normWeight: expected 8 elements/,
    ],
  ];
  it.each(cases)('%s', (_name, mutate, pattern) => {
    const a = base();
    expectInvalid(() => projectAppendSync(mutate(a) as Parameters<typeof projectAppendSync>[0]), pattern);
    expect(a.cache.pages.every((v) => v === 3)).toBe(true);
  });
});

describe('lifetimes', () => {
  it('a disposed backend and a disposed cache throw DisposedError', () => {
    const b = createBackend({ threads: 1 });
    b.dispose();
    expect(() => b.info()).toThrow(DisposedError);
    const { args } = decodeArgs();
    expect(() => mlaDecodeSync({ ...args, backend: b })).toThrow(
      expect.objectContaining({ code: 'ERR_LATENTKV_DISPOSED' }),
    );
    const cache = new LatentCache({ kvLoraRank: 8, ropeDim: 2 });
    cache.dispose();
    expect(() => cache.view([0])).toThrow(DisposedError);
    expect(() => cache.createSequence()).toThrow(DisposedError);
  });

  it('an unknown backend, an unknown ISA and an ISA this CPU lacks are errors naming the valid values', () => {
    expect(() => createBackend({ backend: 'gpu' as never })).toThrow(
      /backend: expected one of auto, cpu, cuda, cann, got "gpu"/,
    );
    expect(() => createBackend({ cpuIsa: 'sse9' as never })).toThrow(
      /cpuIsa: expected one of auto, scalar, avx2, avx512, avx512bf16, neon/,
    );
    expect(() => createBackend({ threads: -1 })).toThrow(/threads: expected an integer in 0..1024/);
    const lacking = process.arch === 'x64' ? 'neon' : 'avx2';
    let thrown: unknown;
    try {
      createBackend({ cpuIsa: lacking });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(BackendUnavailableError);
    expect((thrown as Error).message).toMatch(
      new RegExp(`${lacking} was requested but this CPU/OS does not support it \\(supported: scalar`),
    );
    expect(() => createBackend({ backend: 'cuda' })).toThrow(BackendUnavailableError);
    // No cuda binary, or one that cannot run here (build-cuda/ on a machine without a GPU).
    expect(() => createBackend({ backend: 'cuda' })).toThrow(/no cuda binary|is not usable/);
  });
});
