/**
 * Loader for llama2.c `.bin` checkpoints (the "v0"/legacy export of Karpathy's llama2.c):
 *
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *   f32   token_embedding [vocab, dim]
 *         rms_att [L, dim], wq [L, dim, dim], wk [L, kvDim, dim], wv [L, kvDim, dim],
 *         wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden],
 *         w3 [L, hidden, dim], rms_final [dim],
 *         freq_cis_real [seq_len, headDim/2], freq_cis_imag [seq_len, headDim/2]  (unused: RoPE is
 *         recomputed), wcls [vocab, dim] only when vocab_size is negative (unshared classifier).
 *
 * The file size must match the header exactly; anything else is a ModelFormatError.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import type { LlamaCheckpoint, LlamaConfig, LlamaLayerWeights, LlamaWeights } from './llama-weights.js';
import { ModelFormatError } from './model-format-error.js';

const HEADER_BYTES = 7 * 4;
/** Generous sanity bound on header values; real models are far below it. */
const MAX_DIMENSION = 1 << 20;

export async function loadLlama2cCheckpoint(filePath: string): Promise<LlamaCheckpoint> {
  let bytes: Buffer;
  try {
    bytes = await readFile(filePath);
  } catch (error) {
    throw new ModelFormatError(filePath, `cannot read file: ${(error as Error).message}`);
  }
  return parseLlama2cCheckpoint(bytes, filePath);
}

/**
 * Parses checkpoint bytes. The returned tensors are views into one aligned copy of the file's
 * float section, so the checkpoint costs its file size in memory once.
 */
export function parseLlama2cCheckpoint(bytes: Uint8Array, filePath: string): LlamaCheckpoint {
  if (endianness() !== 'LE')
    throw new ModelFormatError(filePath, 'llama2.c checkpoints can only be read on little-endian machines');
  if (bytes.length < HEADER_BYTES) {
    throw new ModelFormatError(
      filePath,
      `truncated: ${bytes.length} bytes, the header alone needs ${HEADER_BYTES}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, signedVocab, seqLen] = header as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const sharedClassifier = signedVocab > 0;
  const vocabSize = Math.abs(signedVocab);

  const fields: [string, number][] = [
    ['dim', dim],
    ['hidden_dim', hiddenDim],
    ['n_layers', nLayers],
    ['n_heads', nHeads],
    ['n_kv_heads', nKvHeads],
    ['vocab_size', vocabSize],
    ['seq_len', seqLen],
  ];
  for (const [name, value] of fields) {
    if (value <= 0 || value > MAX_DIMENSION) {
      throw new ModelFormatError(
        filePath,
        `not a llama2.c checkpoint: header ${name} = ${value} (header: ${header.join(', ')})`,
      );
    }
  }
  if (dim % nHeads !== 0)
    throw new ModelFormatError(filePath, `header dim ${dim} is not a multiple of n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0)
    throw new ModelFormatError(
      filePath,
      `header n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`,
    );
  const headDim = dim / nHeads;
  if (headDim % 2 !== 0) throw new ModelFormatError(filePath, `head dim ${headDim} is odd; RoPE needs pairs`);

  const config: LlamaConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize,
    seqLen,
    headDim,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    normEps: 1e-5,
  };

  const kvDim = nKvHeads * headDim;
  const ropeTableFloats = seqLen * (headDim / 2);
  // Tensor order of the file, with per-layer sizes; layer tensors are stored as [L, ...] blocks.
  const perLayer = {
    rmsAtt: dim,
    wq: dim * dim,
    wk: kvDim * dim,
    wv: kvDim * dim,
    wo: dim * dim,
    rmsFfn: dim,
    w1: hiddenDim * dim,
    w2: dim * hiddenDim,
    w3: hiddenDim * dim,
  } as const;
  const layerTensorOrder = ['rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w2', 'w3'] as const;

  let totalFloats = vocabSize * dim;
  for (const name of layerTensorOrder) totalFloats += nLayers * perLayer[name];
  totalFloats += dim + 2 * ropeTableFloats + (sharedClassifier ? 0 : vocabSize * dim);
  const expectedBytes = HEADER_BYTES + totalFloats * 4;
  if (bytes.length !== expectedBytes) {
    const what = bytes.length < expectedBytes ? 'truncated' : 'has trailing data';
    throw new ModelFormatError(
      filePath,
      `${what}: the header (${header.join(', ')}) implies ${expectedBytes} bytes, the file has ${bytes.length}`,
    );
  }

  // One aligned copy of the float section (a Buffer from readFile may start at any byte offset).
  const floats = new Float32Array(totalFloats);
  new Uint8Array(floats.buffer).set(bytes.subarray(HEADER_BYTES, expectedBytes));

  let cursor = 0;
  const take = (count: number): Float32Array => {
    const tensor = floats.subarray(cursor, cursor + count);
    cursor += count;
    return tensor;
  };

  const tokenEmbedding = take(vocabSize * dim);
  const stacked = {} as Record<(typeof layerTensorOrder)[number], Float32Array>;
  for (const name of layerTensorOrder) stacked[name] = take(nLayers * perLayer[name]);
  const rmsFinal = take(dim);
  take(2 * ropeTableFloats);
  const classifier = sharedClassifier ? tokenEmbedding : take(vocabSize * dim);

  const layers: LlamaLayerWeights[] = Array.from({ length: nLayers }, (_, l) => {
    const slice = (name: (typeof layerTensorOrder)[number]): Float32Array =>
      stacked[name].subarray(l * perLayer[name], (l + 1) * perLayer[name]);
    return {
      rmsAtt: slice('rmsAtt'),
      wq: slice('wq'),
      wk: slice('wk'),
      wv: slice('wv'),
      wo: slice('wo'),
      rmsFfn: slice('rmsFfn'),
      w1: slice('w1'),
      w2: slice('w2'),
      w3: slice('w3'),
    };
  });

  const weights: LlamaWeights = { tokenEmbedding, layers, rmsFinal, classifier };
  return { config, weights };
}
