import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlama2cCheckpoint, parseLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { ModelFormatError } from '../../lib/model/model-format-error.js';
import { missingFileMessage, STORIES260K_PATH, STORIES260K_SHA256 } from './fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

describe('llama2.c checkpoint loader on stories260K', () => {
  it('reads the header into the config', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const bytes = await readFile(STORIES260K_PATH);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(STORIES260K_SHA256);
    const { config, weights } = await loadLlama2cCheckpoint(STORIES260K_PATH);
    expect(config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      seqLen: 512,
      headDim: 8,
      ropeTheta: 10000,
      ropeStyle: 'interleaved',
      normEps: 1e-5,
    });
    expect(weights.layers).toHaveLength(5);
    expect(weights.classifier).toBe(weights.tokenEmbedding); // positive vocab_size: shared classifier
  });

  it('places every tensor at its llama2.c offset', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const bytes = await readFile(STORIES260K_PATH);
    const { weights } = parseLlama2cCheckpoint(bytes, STORIES260K_PATH);
    const floatAt = (index: number): number => bytes.readFloatLE(28 + index * 4);
    // Offsets by hand from the llama2.c layout: embedding 512*64, then rms_att 5*64, then wq ...
    const embedding = 512 * 64;
    expect(weights.tokenEmbedding[0]).toBe(floatAt(0));
    expect(weights.layers[0]!.rmsAtt[0]).toBe(floatAt(embedding));
    expect(weights.layers[4]!.rmsAtt[63]).toBe(floatAt(embedding + 5 * 64 - 1));
    const wqStart = embedding + 5 * 64;
    expect(weights.layers[1]!.wq[0]).toBe(floatAt(wqStart + 64 * 64));
    const wkStart = wqStart + 5 * 64 * 64;
    expect(weights.layers[2]!.wk[5]).toBe(floatAt(wkStart + 2 * 32 * 64 + 5));
    // rms_final sits right before the two RoPE tables (seq_len * headDim/2 floats each) at the end.
    const rmsFinalStart = bytes.length / 4 - 7 - 2 * 512 * 4 - 64;
    expect(weights.rmsFinal[0]).toBe(floatAt(rmsFinalStart));
    // RMSNorm gains are positive-ish numbers around 1, a quick sign that the offsets are right.
    expect(weights.rmsFinal.every((v) => Number.isFinite(v) && v > 0)).toBe(true);
  });
});

describe('llama2.c checkpoint loader on bad files', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latentkv-llama2c-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const expectFormatError = async (path: string, fragment: RegExp): Promise<void> => {
    const error = await loadLlama2cCheckpoint(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as ModelFormatError).code).toBe('ERR_LATENTKV_MODEL_FORMAT');
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toMatch(fragment);
  };

  it('rejects a truncated copy of a real model', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const bytes = await readFile(STORIES260K_PATH);
    const path = join(dir, 'truncated.bin');
    await writeFile(path, bytes.subarray(0, bytes.length - 1000));
    await expectFormatError(path, /truncated.*1056540 bytes.*1055540/);
  });

  it('rejects trailing data', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const bytes = await readFile(STORIES260K_PATH);
    const path = join(dir, 'longer.bin');
    await writeFile(path, Buffer.concat([bytes, Buffer.alloc(8)]));
    await expectFormatError(path, /trailing data/);
  });

  it('rejects a file shorter than the header', async () => {
    const path = join(dir, 'tiny.bin');
    await writeFile(path, Buffer.alloc(10));
    await expectFormatError(path, /header alone needs 28/);
  });

  it('rejects a garbage header', async () => {
    const path = join(dir, 'garbage.bin');
    await writeFile(path, Buffer.from('this is certainly not a llama2.c checkpoint, only text'));
    await expectFormatError(path, /not a llama2\.c checkpoint/);
  });

  it('rejects header values that contradict each other', async () => {
    const header = Buffer.alloc(28);
    // 8 heads but 3 kv heads
    [64, 172, 5, 8, 3, 512, 512].forEach((v, i) => {
      header.writeInt32LE(v, i * 4);
    });
    const path = join(dir, 'contradiction.bin');
    await writeFile(path, header);
    await expectFormatError(path, /n_heads 8 is not a multiple of n_kv_heads 3/);
  });

  it('names the file when it cannot be read', async () => {
    await expectFormatError(join(dir, 'does-not-exist.bin'), /cannot read file/);
  });
});
