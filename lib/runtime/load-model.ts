/**
 * Turns a model argument of the CLI (or of a script) into a runtime: "stories15M" (the npm-fetched
 * default), a llama2.c `.bin` file, or a Hugging Face folder (config.json + safetensors; Llama
 * family or an MLA checkpoint in the DeepSeek-V3 layout). A Llama-family model can be run through
 * the MLA runtime after the exact KV-head merge (`mla: true`).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isLatentkvCheckpoint, readMlaCheckpoint } from '../convert/export.js';
import { InvalidArgumentError } from '../errors.js';
import { loadHfModel } from '../loaders/hf-model.js';
import type { RopeScaling } from '../mla/rope.js';
import type { LlamaCheckpoint } from '../model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../model/llama2c.js';
import { loadLlama2cTokenizer } from '../model/llama2c-tokenizer.js';
import { mergeKvHeadsToMla } from '../model/merge-kv-heads.js';
import type { MlaCheckpoint } from '../model/mla-weights.js';
import { ensureStories15M } from '../model/stories15m.js';
import { loadHfTokenizer } from '../tokenizers/hf-tokenizer.js';
import type { TextTokenizer } from '../tokenizers/tokenizer.js';
import { GqaModel, type GqaModelOptions } from './gqa-model.js';
import { MlaModel, type MlaModelOptions } from './mla-model.js';
import type { CausalLanguageModel } from './model.js';

export type LoadedCheckpoint =
  | { kind: 'gqa'; checkpoint: LlamaCheckpoint; ropeScaling?: RopeScaling }
  | { kind: 'mla'; checkpoint: MlaCheckpoint; ropeScaling?: RopeScaling };

export interface ResolvedModel {
  /** What the user named, for reports. */
  name: string;
  loaded: LoadedCheckpoint;
  /**
   * The llama2.c tokenizer.bin found for it (or the --tokenizer given), or null; resolveTokenizer
   * also looks for a Hugging Face folder's tokenizer.json.
   */
  tokenizerPath: string | null;
}

export interface ResolveOptions {
  onProgress?: (message: string) => void;
  /** An explicit tokenizer: a llama2.c tokenizer.bin, a tokenizer.json or a folder holding one. */
  tokenizerPath?: string;
}

export async function resolveModel(spec: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
  if (spec.toLowerCase() === 'stories15m') {
    const files = await ensureStories15M(options.onProgress ? { onProgress: options.onProgress } : {});
    return {
      name: 'stories15M',
      loaded: { kind: 'gqa', checkpoint: await loadLlama2cCheckpoint(files.modelPath) },
      tokenizerPath: options.tokenizerPath ?? files.tokenizerPath,
    };
  }
  if (!existsSync(spec)) {
    throw new InvalidArgumentError(
      `model ${spec}: no such file or folder (give "stories15M", a llama2.c .bin file, or a Hugging Face folder with config.json)`,
    );
  }
  if (statSync(spec).isDirectory()) {
    const tokenizerBin = join(spec, 'tokenizer.bin');
    const tokenizerPath = options.tokenizerPath ?? (existsSync(tokenizerBin) ? tokenizerBin : null);
    if (await isLatentkvCheckpoint(spec)) {
      // Written by `latentkv convert`: rope keys per KV head and frequency tables (config.json's
      // latentkv section) that the plain DeepSeek loader does not read.
      return {
        name: spec,
        loaded: { kind: 'mla', checkpoint: await readMlaCheckpoint(spec) },
        tokenizerPath,
      };
    }
    const hf = await loadHfModel(spec);
    const loaded: LoadedCheckpoint =
      hf.kind === 'mla'
        ? { kind: 'mla', checkpoint: hf.checkpoint }
        : { kind: 'gqa', checkpoint: hf.checkpoint };
    if (hf.ropeScaling !== undefined) loaded.ropeScaling = hf.ropeScaling;
    return { name: spec, loaded, tokenizerPath };
  }
  const checkpoint = await loadLlama2cCheckpoint(spec);
  const beside = join(dirname(spec), 'tokenizer.bin');
  return {
    name: spec,
    loaded: { kind: 'gqa', checkpoint },
    tokenizerPath: options.tokenizerPath ?? (existsSync(beside) ? beside : null),
  };
}

/**
 * The tokenizer of a resolved model: its own tokenizer.bin (llama2.c) or, for a Hugging Face
 * folder, its tokenizer.json (an explicit --tokenizer may name either, or a folder holding
 * tokenizer.json); else for a 32000-token vocabulary (Llama 2's, which the TinyStories models
 * share) the stories15M tokenizer.
 */
export async function resolveTokenizer(
  model: ResolvedModel,
  options: ResolveOptions = {},
): Promise<TextTokenizer> {
  const vocabSize = model.loaded.checkpoint.config.vocabSize;
  if (model.tokenizerPath !== null) {
    const path = model.tokenizerPath;
    const hf = path.endsWith('.json') || (existsSync(path) && statSync(path).isDirectory());
    return hf ? loadHfTokenizer(path, vocabSize) : loadLlama2cTokenizer(path, vocabSize);
  }
  if (existsSync(join(model.name, 'tokenizer.json')) && statSync(model.name).isDirectory()) {
    return loadHfTokenizer(model.name, vocabSize);
  }
  if (vocabSize === 32000) {
    const files = await ensureStories15M(options.onProgress ? { onProgress: options.onProgress } : {});
    return loadLlama2cTokenizer(files.tokenizerPath, vocabSize);
  }
  throw new InvalidArgumentError(
    `model ${model.name}: no tokenizer.bin or tokenizer.json beside it and its vocabulary (${vocabSize}) is not Llama 2's; pass --tokenizer <tokenizer.bin | tokenizer.json> (or token ids with --tokens for eval)`,
  );
}

export interface CreateRuntimeOptions {
  /** Run a Llama-family model through the MLA runtime after the exact KV-head merge. */
  mla?: boolean;
  cacheDtype?: string;
  blockSize?: number;
}

export function createRuntime(
  loaded: LoadedCheckpoint,
  options: CreateRuntimeOptions = {},
): CausalLanguageModel {
  const common: GqaModelOptions & MlaModelOptions = {};
  if (options.blockSize !== undefined) common.blockSize = options.blockSize;
  if (loaded.ropeScaling !== undefined) common.ropeScaling = loaded.ropeScaling;
  if (loaded.kind === 'mla') {
    return new MlaModel(loaded.checkpoint, {
      ...common,
      cacheDtype: (options.cacheDtype ?? 'f32') as MlaModelOptions['cacheDtype'],
    });
  }
  if (options.mla === true) {
    // The merge keeps every key dim as a rope dim with its own frequency, so the same scaling applies.
    return new MlaModel(mergeKvHeadsToMla(loaded.checkpoint), {
      ...common,
      cacheDtype: (options.cacheDtype ?? 'f32') as MlaModelOptions['cacheDtype'],
    });
  }
  return new GqaModel(loaded.checkpoint, {
    ...common,
    cacheDtype: (options.cacheDtype ?? 'f32') as GqaModelOptions['cacheDtype'],
  });
}
