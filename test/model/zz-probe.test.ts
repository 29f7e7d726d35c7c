import { it } from 'vitest';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
it('probe', async () => {
  const model = await loadLlama2cCheckpoint('/work/shared/models/stories260K.bin');
  const st = (a: Float32Array) => { let s = 0, mn = 1e9, mx = -1e9; for (const v of a) { s += v; mn = Math.min(mn, v); mx = Math.max(mx, v); } return `mean ${(s / a.length).toFixed(3)} [${mn.toFixed(2)}, ${mx.toFixed(2)}]`; };
  model.weights.layers.forEach((l, i) => console.log('L', i, 'rmsAtt', st(l.rmsAtt), 'rmsFfn', st(l.rmsFfn)));
  console.log('final', st(model.weights.rmsFinal));
});
