/**
 * max|got - want| / max|want|, after requiring that non-finite values sit at the same
 * positions with the same value; NaN anywhere is a failure (returns Infinity).
 */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Number.POSITIVE_INFINITY;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i] as number;
    const w = want[i] as number;
    if (Number.isNaN(g) || Number.isNaN(w)) return Number.POSITIVE_INFINITY;
    if (!Number.isFinite(g) || !Number.isFinite(w)) {
      if (g !== w) return Number.POSITIVE_INFINITY;
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(g - w));
    maxRef = Math.max(maxRef, Math.abs(w));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}
