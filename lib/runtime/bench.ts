/**
 * Decode speed of model runtimes, measured side by side in one run: for each context length L the
 * sequence is prefilled with L - 1 tokens, then the step that brings it to L tokens is timed again
 * and again (the cache is cut back to L - 1 after each), and the median is reported. A program
 * (used by `latentkv generate --bench`), never a timed test.
 */
import type { CausalLanguageModel } from './model.js';

export interface DecodeBenchOptions {
  /** Context lengths (tokens in the cache after the timed step); default [32, 128, 256]. */
  contexts?: readonly number[];
  /** Timed steps per context and model; default 50 (after 3 untimed). */
  repeats?: number;
  /** Token ids to fill the context with; default a fixed pseudo-random sequence. */
  tokens?: readonly number[];
}

export interface DecodeBenchRow {
  name: string;
  kind: 'gqa' | 'mla';
  cacheDtype: string;
  context: number;
  /** Median time of one decode step, milliseconds. */
  msPerToken: number;
  tokensPerSecond: number;
  kvBytesPerToken: number;
}

function fillTokens(count: number, vocabSize: number): number[] {
  const out = [1];
  let s = 12345;
  while (out.length < count) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(3 + (s % Math.max(1, vocabSize - 3)));
  }
  return out;
}

export function benchDecode(
  models: readonly { name: string; model: CausalLanguageModel }[],
  options: DecodeBenchOptions = {},
): DecodeBenchRow[] {
  const contexts = options.contexts ?? [32, 128, 256];
  const repeats = options.repeats ?? 50;
  const rows: DecodeBenchRow[] = [];
  for (const context of contexts) {
    // Every model is prefilled, then their timed steps alternate, so that a change in machine load
    // during the run touches all of them alike.
    const states = models.map(({ name, model }) => {
      if (context > model.maxSeqLen) {
        throw new RangeError(`context ${context} is past ${name}'s maxSeqLen ${model.maxSeqLen}`);
      }
      const tokens = options.tokens?.slice(0, context) ?? fillTokens(context, model.vocabSize);
      const seq = model.createSequence();
      if (context > 1) model.forward([{ seqId: seq, tokens: tokens.slice(0, context - 1) }]);
      return { seq, last: [tokens[context - 1] ?? 1], times: [] as number[] };
    });
    try {
      for (let i = 0; i < repeats + 3; i++) {
        models.forEach(({ model }, m) => {
          const state = states[m]!;
          const start = process.hrtime.bigint();
          model.forward([{ seqId: state.seq, tokens: state.last }]);
          const ns = Number(process.hrtime.bigint() - start);
          if (i >= 3) state.times.push(ns / 1e6);
          model.truncate(state.seq, context - 1);
        });
      }
    } finally {
      models.forEach(({ model }, m) => {
        model.freeSequence(states[m]!.seq);
      });
    }
    models.forEach(({ name, model }, m) => {
      const times = states[m]!.times.sort((a, b) => a - b);
      const ms = times[Math.floor(times.length / 2)]!;
      rows.push({
        name,
        kind: model.kind,
        cacheDtype: model.cacheDtype,
        context,
        msPerToken: ms,
        tokensPerSecond: 1000 / ms,
        kvBytesPerToken: model.kvBytesPerToken,
      });
    });
  }
  return rows;
}

/** A plain-text table of bench rows. */
export function formatBenchTable(rows: readonly DecodeBenchRow[]): string {
  const header = ['model', 'kind', 'cache', 'context', 'ms/token', 'tokens/s', 'KV B/token'];
  const body = rows.map((r) => [
    r.name,
    r.kind,
    r.cacheDtype,
    String(r.context),
    r.msPerToken.toFixed(2),
    r.tokensPerSecond.toFixed(1),
    String(r.kvBytesPerToken),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(header), ...body.map(line)].join('\n');
}
