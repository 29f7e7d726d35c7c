/**
 * Shared set-up of the quality measurements (docs/quality.md and quality.test.ts).
 * stories15M: calibration on the first half of tinystories_sample.txt (+ model-sampled sequences,
 * seed 1), evaluation on the held-out second half. stories260K (no tokenizer): calibration on
 * sequences sampled from the model with seed 1, evaluation on sequences sampled with seed 2.
 */
import { readFileSync } from 'node:fs';
import {
  type CalibrationStats,
  calibrate,
  mergeCalibration,
  sampleSequences,
  splitText,
} from '../../lib/convert/calibration.js';
import type { ConvertOptions } from '../../lib/convert/convert.js';
import { type ReferenceRun, runReference, windows } from '../../lib/convert/quality.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { loadLlama2cTokenizer } from '../../lib/model/llama2c-tokenizer.js';
import { ensureStories15M } from '../../lib/model/stories15m.js';
import { STORIES260K_PATH, TINYSTORIES_SAMPLE_PATH } from '../model/fixtures.js';

export const BUDGETS = [0.5, 0.3125, 0.2, 0.125];

export const VARIANTS: [string, ConvertOptions][] = [
  ['TransMLA (official: RoRoPE+FreqFold, BKV-PCA)', { method: 'transmla' }],
  ['TransMLA, no BKV', { method: 'transmla', bkv: false }],
  ['TransMLA + attention-aware latent', { method: 'transmla', decomposition: 'attention' }],
  ['TransMLA + energy allocation + freq table', { method: 'transmla', allocation: 'energy' }],
  ['TransMLA + rotation allocation + freq table', { method: 'transmla', allocation: 'rotation' }],
  [
    'TransMLA + rotation + table + attention',
    { method: 'transmla', allocation: 'rotation', decomposition: 'attention' },
  ],
  ['MHA2MLA S_2-norm + SVD_joint (official)', { method: 'mha2mla', partialRope: '2-norm' }],
  ['MHA2MLA S_2-norm + SVD_split', { method: 'mha2mla', partialRope: '2-norm', decomposition: 'svd-split' }],
  ['MHA2MLA S_high + SVD_joint', { method: 'mha2mla', partialRope: 'high' }],
  ['MHA2MLA S_low + SVD_joint', { method: 'mha2mla', partialRope: 'low' }],
  ['MHA2MLA S_uniform + SVD_joint', { method: 'mha2mla', partialRope: 'uniform' }],
  [
    'MHA2MLA S_2-norm + BKV-PCA (activations)',
    { method: 'mha2mla', partialRope: '2-norm', decomposition: 'pca' },
  ],
];

export interface Row {
  model: string;
  budget: number;
  variant: string;
  shape: string;
  cacheValues: number;
  perplexity: number | null;
  originalPerplexity: number;
  meanKl: number | null;
  top1: number | null;
  error?: string;
}

export async function setup(name: string): Promise<{
  model: LlamaCheckpoint;
  stats: CalibrationStats;
  reference: ReferenceRun;
  /** The calibration token sequences the stats come from (never the evaluation's). */
  calibration: number[][];
}> {
  if (name === 'stories15M') {
    const files = await ensureStories15M();
    const model = await loadLlama2cCheckpoint(files.modelPath);
    const tokenizer = await loadLlama2cTokenizer(files.tokenizerPath, model.config.vocabSize);
    const { calibration, heldOut } = splitText(readFileSync(TINYSTORIES_SAMPLE_PATH, 'utf8'));
    const calibTokens = windows(tokenizer.encode(calibration), 256);
    const evalTokens = windows(tokenizer.encode(heldOut), 256);
    const textStats = calibrate(model, calibTokens);
    const sampled = sampleSequences(model, { count: 3, length: 256, seed: 1 });
    return {
      model,
      stats: mergeCalibration(textStats, sampled.stats),
      reference: runReference(model, evalTokens),
      calibration: [...calibTokens, ...sampled.sequences],
    };
  }
  const model = await loadLlama2cCheckpoint(STORIES260K_PATH);
  const { stats, sequences } = sampleSequences(model, { count: 8, length: 128, seed: 1 });
  const evalSeqs = sampleSequences(model, { count: 6, length: 128, seed: 2 }).sequences;
  return { model, stats, reference: runReference(model, evalSeqs), calibration: sequences };
}
