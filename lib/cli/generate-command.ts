/**
 * `latentkv generate <model> --prompt TEXT`: streams a continuation to stdout and prints tokens/s
 * on stderr; `--mla` runs a Llama-family model through the MLA runtime after the exact KV-head
 * merge; `--bench` instead measures decode speed of the original (GQA) and merged-MLA forms side by
 * side at contexts 32, 128 and 256.
 */
import { InvalidArgumentError } from '../errors.js';
import { benchDecode, formatBenchTable } from '../runtime/bench.js';
import { generate } from '../runtime/generate.js';
import { createRuntime, resolveModel, resolveTokenizer } from '../runtime/load-model.js';
import { stopTokensOf } from '../tokenizers/tokenizer.js';
import { intFlag, type ParsedArgs, parseArgs } from './args.js';

export function numberFlag(args: ParsedArgs, name: string, fallback: number): number {
  const v = args.flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) {
    throw new InvalidArgumentError(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

const progress = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

export async function generateCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    prompt: 'value',
    'max-tokens': 'value',
    temperature: 'value',
    'top-k': 'value',
    'top-p': 'value',
    seed: 'value',
    'cache-dtype': 'value',
    tokenizer: 'value',
    mla: 'flag',
    bench: 'flag',
    contexts: 'value',
    json: 'flag',
  });
  const [spec, ...extra] = args.positionals;
  if (spec === undefined || extra.length > 0) {
    throw new InvalidArgumentError(
      'usage: latentkv generate <model.bin | hf-folder | stories15M> --prompt TEXT [--tokenizer tokenizer.bin|tokenizer.json] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--cache-dtype f32|f16|bf16|...] [--mla] [--bench]',
    );
  }
  const tokenizerPath = stringFlag(args, 'tokenizer');
  const resolved = await resolveModel(spec, {
    onProgress: progress,
    ...(tokenizerPath ? { tokenizerPath } : {}),
  });
  const cacheDtype = stringFlag(args, 'cache-dtype');
  const runtimeOptions = cacheDtype === undefined ? {} : { cacheDtype };

  if (args.flags.has('bench')) {
    const contexts = (stringFlag(args, 'contexts') ?? '32,128,256').split(',').map((c) => {
      const n = Number(c);
      if (!Number.isInteger(n) || n < 1)
        throw new InvalidArgumentError(`--contexts: bad context ${JSON.stringify(c)}`);
      return n;
    });
    const models = [
      {
        name: `${resolved.name} (${resolved.loaded.kind})`,
        model: createRuntime(resolved.loaded, runtimeOptions),
      },
    ];
    if (resolved.loaded.kind === 'gqa') {
      models.push({
        name: `${resolved.name} (merged MLA)`,
        model: createRuntime(resolved.loaded, { ...runtimeOptions, mla: true }),
      });
    }
    const usable = contexts.filter((c) => models.every((m) => c <= m.model.maxSeqLen));
    const rows = benchDecode(models, { contexts: usable });
    if (args.flags.has('json')) console.log(JSON.stringify(rows, null, 2));
    else {
      console.log(`decode step (batch 1) at each context length, median of 50 steps, models taking turns:`);
      console.log(formatBenchTable(rows));
    }
    return 0;
  }

  const prompt = stringFlag(args, 'prompt') ?? '';
  const tokenizer = await resolveTokenizer(resolved, { onProgress: progress });
  const model = createRuntime(resolved.loaded, { ...runtimeOptions, mla: args.flags.has('mla') });
  const promptTokens = tokenizer.encode(prompt);
  if (promptTokens.length === 0) {
    // No BOS (Qwen2-style tokenizers) and no text: start from the end-of-text token.
    const start = tokenizer.startToken;
    if (start === undefined || start === null) {
      throw new InvalidArgumentError(
        'empty prompt and the tokenizer names no BOS or EOS token to start from; give --prompt TEXT',
      );
    }
    promptTokens.push(start);
  }
  const maxTokens = intFlag(args, 'max-tokens', 256, 0);
  const topK = intFlag(args, 'top-k', 0, 0);
  const seed = intFlag(args, 'seed', Date.now() % 2 ** 31, 0);
  process.stdout.write(prompt);
  let previous = promptTokens.at(-1)!;
  const result = generate(model, promptTokens, {
    maxTokens: Math.min(maxTokens, model.maxSeqLen - promptTokens.length),
    temperature: numberFlag(args, 'temperature', 1),
    topK,
    topP: numberFlag(args, 'top-p', 0.9),
    seed,
    stopTokens: stopTokensOf(tokenizer),
    onToken: (token) => {
      process.stdout.write(tokenizer.decodeToken(previous, token));
      previous = token;
    },
  });
  process.stdout.write('\n');
  process.stderr.write(
    `${model.kind} runtime, ${model.cacheDtype} cache (${model.kvBytesPerToken} KV bytes/token): prompt ${result.promptTokens} tokens at ${result.prefillTokensPerSecond.toFixed(1)} tokens/s, ` +
      `${result.tokens.length} new tokens at ${result.decodeTokensPerSecond.toFixed(1)} tokens/s (${result.stopReason})\n`,
  );
  model.dispose();
  return 0;
}
