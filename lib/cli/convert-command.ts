/**
 * `latentkv convert <in> <out> --method transmla|mha2mla ...`: converts a llama2.c checkpoint, a
 * Hugging Face Llama-family folder (config.json + safetensors) or the embedded `stories15M` to an MLA model in the DeepSeek-V3 layout. Progress goes to stderr per
 * layer and step; Ctrl-C stops it and leaves no half-written output.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { searchShape } from '../convert/auto-shape.js';
import { calibrate, sampleSequences, textCalibrationSequences } from '../convert/calibration.js';
import { type ConvertOptions, convertToMla } from '../convert/convert.js';
import { writeMlaCheckpoint } from '../convert/export.js';
import type { Decomposition } from '../convert/mla-builder.js';
import { ConversionAbortedError } from '../convert/progress.js';
import type { PartialRopeStrategy, RopeAllocation, RopeFrequencies } from '../convert/rope-split.js';
import { InvalidArgumentError } from '../errors.js';
import { loadHfModel } from '../loaders/hf-model.js';
import type { LlamaCheckpoint } from '../model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../model/llama2c.js';
import { loadLlama2cTokenizer } from '../model/llama2c-tokenizer.js';
import { ensureStories15M } from '../model/stories15m.js';
import { intFlag, parseArgs } from './args.js';

export const CONVERT_USAGE = `usage: latentkv convert <in.bin|hf-folder|stories15M> <out-dir> [options]
  --method transmla|mha2mla     default transmla
  --kv-budget F                 cache size as a fraction of the original (default 0.3125)
  --kv-lora-rank N              latent width R (overrides the budget)
  --rope-dim N                  TransMLA: qk_rope_head_dim; MHA2MLA: rope dims per KV head
  --freqfold N                  TransMLA FreqFold
  --allocation uniform|energy|rotation    TransMLA rope components (uniform = official)
  --frequencies deepseek|weighted         TransMLA rope frequencies (weighted = per-pair table)
  --decomposition pca|svd-joint|svd-split|attention
  --no-bkv                      skip BKV balancing before the PCA
  --partial-rope high|low|uniform|2-norm  MHA2MLA strategy (default 2-norm)
  --q-lora-rank N               low-rank query
  --calib FILE                  calibration text (tokenised with the model's tokenizer)
  --calib-tokens FILE           calibration token ids: one sequence per line
  --tokenizer FILE              tokenizer.bin (default: beside the model)
  --calib-samples N             calibration samples (default 128)
  --calib-length N              tokens per sample (default 256, at most the model's context)
  --seed N                      calibration seed (default 42)
  --auto-shape                  TransMLA: search (d_R, ff, R) for the budget on the calibration
                                sequences (3/4 fit, 1/4 scored by KL); overrides --allocation/--rope-dim/--freqfold/--kv-lora-rank
  --overwrite                   replace an existing output folder
Without --calib/--calib-tokens, calibration samples sequences from the model itself.`;

const KNOWN = {
  method: 'value',
  'kv-budget': 'value',
  'kv-lora-rank': 'value',
  'rope-dim': 'value',
  freqfold: 'value',
  allocation: 'value',
  frequencies: 'value',
  decomposition: 'value',
  'no-bkv': 'flag',
  'partial-rope': 'value',
  'q-lora-rank': 'value',
  calib: 'value',
  'calib-tokens': 'value',
  tokenizer: 'value',
  'calib-samples': 'value',
  'calib-length': 'value',
  seed: 'value',
  overwrite: 'flag',
  'auto-shape': 'flag',
  help: 'flag',
} as const;

function choice<T extends string>(
  name: string,
  value: string | true | undefined,
  valid: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !(valid as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(
      `--${name}: expected one of ${valid.join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

export async function convertCommand(argv: string[], signal?: AbortSignal): Promise<number> {
  const args = parseArgs(argv, KNOWN);
  if (args.flags.has('help')) {
    console.log(CONVERT_USAGE);
    return 0;
  }
  const [input, output] = args.positionals;
  if (input === undefined || output === undefined || args.positionals.length > 2) {
    console.error(CONVERT_USAGE);
    return 1;
  }
  const optInt = (name: string, min: number): number | undefined =>
    args.flags.has(name) ? intFlag(args, name, 0, min) : undefined;
  const budgetFlag = args.flags.get('kv-budget');
  let kvBudget: number | undefined;
  if (budgetFlag !== undefined) {
    kvBudget = Number(budgetFlag);
    if (typeof budgetFlag !== 'string' || !(kvBudget > 0 && kvBudget <= 1)) {
      throw new InvalidArgumentError(
        `--kv-budget: expected a number in (0, 1], got ${JSON.stringify(budgetFlag)}`,
      );
    }
  }
  const options: ConvertOptions = {
    method: choice('method', args.flags.get('method'), ['transmla', 'mha2mla'] as const),
    kvBudget,
    kvLoraRank: optInt('kv-lora-rank', 1),
    ropeDim: optInt('rope-dim', 2),
    freqfold: optInt('freqfold', 1),
    allocation: choice<RopeAllocation>('allocation', args.flags.get('allocation'), [
      'uniform',
      'energy',
      'rotation',
    ]),
    frequencies: choice<RopeFrequencies>('frequencies', args.flags.get('frequencies'), [
      'deepseek',
      'weighted',
    ]),
    decomposition: choice<Decomposition>('decomposition', args.flags.get('decomposition'), [
      'pca',
      'svd-joint',
      'svd-split',
      'attention',
    ]),
    bkv: !args.flags.has('no-bkv'),
    partialRope: choice<PartialRopeStrategy>('partial-rope', args.flags.get('partial-rope'), [
      'high',
      'low',
      'uniform',
      '2-norm',
    ]),
    qLoraRank: optInt('q-lora-rank', 1) ?? null,
  };

  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  if (signal?.aborted) controller.abort();
  else signal?.addEventListener('abort', () => controller.abort(), { once: true });
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  try {
    let modelPath = input;
    let tokenizerPath = args.flags.get('tokenizer') as string | undefined;
    if (input === 'stories15M') {
      const files = await ensureStories15M({ onProgress: log });
      modelPath = files.modelPath;
      tokenizerPath ??= files.tokenizerPath;
    }
    tokenizerPath ??= existsSync(join(dirname(modelPath), 'tokenizer.bin'))
      ? join(dirname(modelPath), 'tokenizer.bin')
      : undefined;
    let model: LlamaCheckpoint;
    if (existsSync(modelPath) && statSync(modelPath).isDirectory()) {
      log(`reading ${modelPath}`);
      const hf = await loadHfModel(modelPath);
      if (hf.kind !== 'gqa') throw new InvalidArgumentError(`${modelPath} is already an MLA checkpoint`);
      if (hf.ropeScaling !== undefined) {
        throw new InvalidArgumentError(
          `${modelPath}: rope_scaling (${hf.ropeScaling.type}) is not supported by the converter yet`,
        );
      }
      model = hf.checkpoint;
    } else {
      model = await loadLlama2cCheckpoint(modelPath);
    }
    const count = intFlag(args, 'calib-samples', 128, 1);
    const length = Math.min(intFlag(args, 'calib-length', 256, 2), model.config.seqLen);
    const seed = intFlag(args, 'seed', 42, 0);
    const calibText = args.flags.get('calib') as string | undefined;
    const calibTokens = args.flags.get('calib-tokens') as string | undefined;
    const calibProgress = (done: number, total: number): void => log(`calibration ${done}/${total}`);
    let stats: ConvertOptions['calibration'];
    let calibSequences: number[][] = [];
    if (calibTokens !== undefined) {
      const sequences = (await readFile(calibTokens, 'utf8'))
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.length > 0)
        .map((line) => line.split(/[\s,]+/).map(Number));
      calibSequences = sequences;
      stats = {
        stats: calibrate(model, sequences, { signal: controller.signal, onSequence: calibProgress }),
      };
    } else if (calibText !== undefined) {
      if (tokenizerPath === undefined)
        throw new InvalidArgumentError('--calib needs a tokenizer: pass --tokenizer FILE');
      const tokenizer = await loadLlama2cTokenizer(tokenizerPath, model.config.vocabSize);
      const sequences = textCalibrationSequences(tokenizer, await readFile(calibText, 'utf8'), {
        count,
        length,
        seed,
      });
      calibSequences = sequences;
      stats = {
        stats: calibrate(model, sequences, { signal: controller.signal, onSequence: calibProgress }),
      };
    } else {
      log(`calibration: sampling ${count} x ${length} tokens from the model (seed ${seed})`);
      const sampled = sampleSequences(model, {
        count,
        length,
        seed,
        signal: controller.signal,
        onSequence: calibProgress,
      });
      calibSequences = sampled.sequences;
      stats = { stats: sampled.stats };
    }
    if (args.flags.has('auto-shape')) {
      const search = await searchShape(model, calibSequences, {
        kvBudget: options.kvBudget ?? 0.3125,
        allocations: ['rotation', 'uniform'],
        base: { decomposition: options.decomposition, bkv: options.bkv, qLoraRank: options.qLoraRank },
        signal: controller.signal,
        onProgress: (event) => log(event.message),
      });
      const b = search.best;
      log(
        `shape search: ${b.allocation} R=${b.kvLoraRank} dR=${b.ropeDim} ff=${b.freqfold} (held-out calibration KL ${b.meanKl.toFixed(4)})`,
      );
      Object.assign(options, {
        method: 'transmla',
        allocation: b.allocation,
        ropeDim: b.ropeDim,
        freqfold: b.freqfold,
        kvLoraRank: b.kvLoraRank,
      });
    }
    const result = await convertToMla(model, {
      ...options,
      calibration: stats,
      signal: controller.signal,
      onProgress: (event) => log(event.message),
    });
    await writeMlaCheckpoint(output, result, {
      extra: { report: result.report },
      copyFiles: tokenizerPath === undefined ? {} : { 'tokenizer.bin': tokenizerPath },
      overwrite: args.flags.has('overwrite'),
      signal: controller.signal,
      onProgress: (event) => log(event.message),
    });
    const r = result.report;
    console.log(
      `${output}: ${r.method} R=${r.kvLoraRank} rope=${r.ropeDim}x${r.ropeHeads}, ${r.cacheValues} of ${r.originalCacheValues} cached values per token per layer (${(r.kvRatio * 100).toFixed(2)}%), ${r.seconds.toFixed(1)} s`,
    );
    return 0;
  } catch (error) {
    if (error instanceof ConversionAbortedError) {
      log('latentkv convert: interrupted; no output written');
      return 130;
    }
    throw error;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
