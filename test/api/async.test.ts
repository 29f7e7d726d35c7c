// Long native work runs off the event loop: timers keep firing while a decode is in flight.
import { expect, it } from 'vitest';
import { createBackend, mlaDecode } from '../../lib/index.js';
import { makeDecodeCase } from '../helpers/decode-cases.js';

it('a timer keeps firing while a long async decode runs', async () => {
  // The scalar reference on one thread is slow on purpose: this decode takes a good fraction of a second.
  const backend = createBackend({ cpuIsa: 'scalar', threads: 1 });
  const c = makeDecodeCase(
    { qLen: 1, numHeads: 64, R: 128, P: 16, ropeHeads: 1, blockSize: 64, dtype: 'f32', seqLens: [4096] },
    3,
  );
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = performance.now();
  await mlaDecode({
    cache: c.view,
    numHeads: 64,
    qLatent: c.qLatent,
    qRope: c.qRope,
    softmaxScale: 0.1,
    backend,
  });
  const elapsed = performance.now() - started;
  clearInterval(timer);
  backend.dispose();
  expect(elapsed).toBeGreaterThan(50);
  // With a blocked loop ticks would be 0 or 1; allow for a slow, shared machine.
  expect(ticks).toBeGreaterThanOrEqual(Math.min(5, Math.floor(elapsed / 5 / 4)));
});
