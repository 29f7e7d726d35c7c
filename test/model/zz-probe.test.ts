import { it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { loadLlama2cTokenizer } from '../../lib/model/llama2c-tokenizer.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { forwardSequence } from '../../lib/model/llama-forward.js';
import { logSoftmax, argmax } from '../../lib/model/sampling.js';
it('probe', async () => {
  const tok = await loadLlama2cTokenizer('/root/.cache/latentkv/stories15M/tokenizer.bin', 32000);
  const model = await loadLlama2cCheckpoint('/root/.cache/latentkv/stories15M/model.bin');
  const text = (await readFile('/work/shared/data/tinystories_sample.txt', 'utf8')).trim();
  const t = tok.encode(text).slice(0, 40);
  const lg = forwardSequence(model.weights, model.config, t, { precision: 'f32' });
  console.log(t.slice(1).map((x, i) => `${Buffer.from(tok.vocab[x]!).toString()}:${(-logSoftmax(lg[i]!)[x]!).toFixed(2)}:${Buffer.from(tok.vocab[argmax(lg[i]!)]!).toString()}`).join(' | '));
}, 60000);
