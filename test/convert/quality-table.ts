/**
 * Generates the quality table of docs/quality.md (a program, not a test):
 *   npx vite-node test/convert/quality-table.ts [stories15M|stories260K|all] [--quick]
 */
import { writeFileSync } from 'node:fs';
import { convertToMla } from '../../lib/convert/convert.js';
import { evaluateConverted } from '../../lib/convert/quality.js';
import { BUDGETS, type Row, setup, VARIANTS } from './quality-setup.js';

async function main(): Promise<void> {
  const which = process.argv[2] ?? 'all';
  const quick = process.argv.includes('--quick');
  const names = which === 'all' ? ['stories260K', 'stories15M'] : [which];
  const rows: Row[] = [];
  for (const name of names) {
    const { model, stats, reference } = await setup(name);
    console.log(
      `${name}: calibration ${stats.tokenCount} tokens, evaluation ${reference.sequences.flat().length} tokens, original ppl ${reference.perplexity.toFixed(3)}`,
    );
    for (const budget of BUDGETS) {
      for (const [variant, options] of quick ? VARIANTS.slice(0, 4) : VARIANTS) {
        let row: Row;
        try {
          const mla = await convertToMla(model, { ...options, kvBudget: budget, calibration: { stats } });
          const q = evaluateConverted(reference, mla);
          const r = mla.report;
          row = {
            model: name,
            budget,
            variant,
            shape:
              r.method === 'transmla'
                ? `R=${r.kvLoraRank} dR=${r.ropeDim} ff=${r.freqfold}`
                : `R=${r.kvLoraRank} dr=${r.ropeDim}x${r.ropeHeads}`,
            cacheValues: r.cacheValues,
            perplexity: q.perplexity,
            originalPerplexity: q.originalPerplexity,
            meanKl: q.meanKl,
            top1: q.top1Agreement,
          };
        } catch (error) {
          row = {
            model: name,
            budget,
            variant,
            shape: '-',
            cacheValues: 0,
            perplexity: null,
            originalPerplexity: reference.perplexity,
            meanKl: null,
            top1: null,
            error: (error as Error).message,
          };
        }
        rows.push(row);
        console.log(
          `${name} ${(budget * 100).toFixed(2)}% | ${variant} | ${row.shape} | ${row.cacheValues} | ppl ${row.perplexity?.toFixed(3) ?? '-'} | KL ${row.meanKl?.toFixed(4) ?? '-'} | top1 ${row.top1?.toFixed(3) ?? '-'}${row.error ? ` | ${row.error}` : ''}`,
        );
      }
    }
  }
  writeFileSync(`/tmp/quality-${which}.json`, JSON.stringify(rows, null, 1));
}

await main();
