/**
 * `latentkv eval <model> [--reference <model>] --text FILE`: windowed perplexity, and against a
 * reference the mean KL(P_ref || P_model), top-1 agreement and KV bytes per token of both. With
 * `--mla` and no --reference the model runs through the MLA runtime after the exact KV-head merge
 * and is compared with itself in its original (GQA) form.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';
import { evaluateModel } from '../runtime/evaluate.js';
import { createRuntime, resolveModel, resolveTokenizer } from '../runtime/load-model.js';
import { intFlag, parseArgs } from './args.js';
import { stringFlag } from './generate-command.js';

const progress = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

export async function evalCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    reference: 'value',
    text: 'value',
    tokens: 'value',
    tokenizer: 'value',
    window: 'value',
    'max-tokens': 'value',
    'cache-dtype': 'value',
    mla: 'flag',
    json: 'flag',
  });
  const [spec, ...extra] = args.positionals;
  const textPath = stringFlag(args, 'text');
  const tokensPath = stringFlag(args, 'tokens');
  if (spec === undefined || extra.length > 0 || (textPath === undefined) === (tokensPath === undefined)) {
    throw new InvalidArgumentError(
      'usage: latentkv eval <model> [--reference <model>] (--text FILE | --tokens FILE) [--tokenizer tokenizer.bin|tokenizer.json] [--window N] [--max-tokens N] [--cache-dtype D] [--mla] [--json]',
    );
  }
  const tokenizerPath = stringFlag(args, 'tokenizer');
  const resolveOptions = { onProgress: progress, ...(tokenizerPath ? { tokenizerPath } : {}) };
  const resolved = await resolveModel(spec, resolveOptions);
  const referenceSpec = stringFlag(args, 'reference');
  const referenceResolved =
    referenceSpec === undefined ? undefined : await resolveModel(referenceSpec, resolveOptions);

  let tokens: number[];
  if (textPath !== undefined) {
    const tokenizer = await resolveTokenizer(resolved, resolveOptions);
    tokens = tokenizer.encode((await readFile(textPath, 'utf8')).trim());
  } else {
    const text = await readFile(tokensPath!, 'utf8');
    tokens = text
      .split(/[\s,]+/)
      .filter((s) => s !== '')
      .map((s) => {
        const n = Number(s);
        if (!Number.isInteger(n) || n < 0)
          throw new InvalidArgumentError(`${tokensPath}: ${JSON.stringify(s)} is not a token id`);
        return n;
      });
  }
  const maxTokens = intFlag(args, 'max-tokens', 1024, 2);
  tokens = tokens.slice(0, maxTokens);

  const cacheDtype = stringFlag(args, 'cache-dtype');
  const model = createRuntime(resolved.loaded, {
    mla: args.flags.has('mla'),
    ...(cacheDtype ? { cacheDtype } : {}),
  });
  let reference = referenceResolved === undefined ? undefined : createRuntime(referenceResolved.loaded);
  let referenceName = referenceSpec;
  if (reference === undefined && args.flags.has('mla') && resolved.loaded.kind === 'gqa') {
    reference = createRuntime(resolved.loaded);
    referenceName = `${resolved.name} (original, gqa)`;
  }
  const windowSize = intFlag(
    args,
    'window',
    Math.min(model.maxSeqLen, reference?.maxSeqLen ?? model.maxSeqLen),
    2,
  );
  const report = await evaluateModel(model, tokens, { windowSize, ...(reference ? { reference } : {}) });
  if (args.flags.has('json')) {
    console.log(JSON.stringify({ modelName: resolved.name, referenceName, windowSize, ...report }, null, 2));
    return 0;
  }
  const m = report.model;
  console.log(
    `model      ${resolved.name} (${m.kind}${args.flags.has('mla') ? ', exact KV-head merge' : ''}, ${m.cacheDtype} cache)`,
  );
  console.log(`tokens     ${m.perplexity.tokenCount} scored, windows of ${windowSize}`);
  console.log(
    `perplexity ${m.perplexity.perplexity.toFixed(4)}  (mean NLL ${m.perplexity.meanNll.toFixed(5)} nats)`,
  );
  console.log(`KV bytes   ${m.kvBytesPerToken} per token`);
  const r = report.reference;
  if (r !== undefined) {
    console.log(`reference  ${referenceName} (${r.kind}, ${r.cacheDtype} cache)`);
    console.log(`  perplexity       ${r.perplexity.perplexity.toFixed(4)}`);
    console.log(
      `  KV bytes         ${r.kvBytesPerToken} per token (model/reference ${(m.kvBytesPerToken / r.kvBytesPerToken).toFixed(3)})`,
    );
    console.log(`  mean KL(ref||m)  ${r.meanKl.toExponential(3)} nats (max ${r.maxKl.toExponential(3)})`);
    console.log(`  top-1 agreement  ${(100 * r.top1Agreement).toFixed(2)}% of ${r.positions} positions`);
  }
  return 0;
}
