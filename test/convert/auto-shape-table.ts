/**
 * Automatic (d_R, ff, r) search against the fixed rule, on stories15M or stories260K (a program):
 *   npx vite-node test/convert/auto-shape-table.ts [stories15M|stories260K]
 * The search sees only the calibration sequences (3/4 to fit, 1/4 to score); the table's numbers
 * are on the held-out evaluation set of quality-setup.ts.
 */
import { searchShape } from '../../lib/convert/auto-shape.js';
import { convertToMla } from '../../lib/convert/convert.js';
import { evaluateConverted } from '../../lib/convert/quality.js';
import { BUDGETS, setup } from './quality-setup.js';

const name = process.argv[2] ?? 'stories15M';
const { model, stats, reference, calibration } = await setup(name);
for (const budget of BUDGETS) {
  const fixed = await convertToMla(model, {
    kvBudget: budget,
    allocation: 'rotation',
    calibration: { stats },
  });
  const qf = evaluateConverted(reference, fixed);
  const search = await searchShape(model, calibration, {
    kvBudget: budget,
    allocations: ['rotation', 'uniform'],
  });
  const b = search.best;
  const auto = await convertToMla(model, {
    allocation: b.allocation,
    ropeDim: b.ropeDim,
    freqfold: b.freqfold,
    kvLoraRank: b.kvLoraRank,
    calibration: { stats },
  });
  const qa = evaluateConverted(reference, auto);
  console.log(
    `${name} ${(budget * 100).toFixed(2)}% | fixed rotation R=${fixed.config.kvLoraRank} dR=${fixed.config.qkRopeHeadDim} | ppl ${qf.perplexity.toFixed(3)} KL ${qf.meanKl.toFixed(4)} top1 ${qf.top1Agreement.toFixed(3)} | auto ${b.allocation} R=${b.kvLoraRank} dR=${b.ropeDim} ff=${b.freqfold} | ppl ${qa.perplexity.toFixed(3)} KL ${qa.meanKl.toFixed(4)} top1 ${qa.top1Agreement.toFixed(3)} | search fit ${search.fitTokens} held ${search.heldOutTokens} tokens: ${search.candidates.map((c) => `${c.allocation[0]}${c.ropeDim}/${c.freqfold}:${c.meanKl.toFixed(3)}`).join(' ')}`,
  );
}
