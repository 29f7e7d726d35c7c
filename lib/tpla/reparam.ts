/**
 * TPLA reparameterisation of an MLA checkpoint (research/mla-methods.md 4.2), exact before slicing:
 *
 *   kv_a latent rows  <- U^T rows          (c' = U^T c)
 *   kv_b_proj         <- kv_b diag(gamma) U
 *   kv_a_layernorm    <- 1                 (RMSNorm(U^T c) = U^T RMSNorm(c): norms are preserved)
 *
 * U orthogonal: the PCA basis of calibration latents (uncentered second moment, eigenvalues
 * descending, so shard 0 gets the highest-energy slice) or a randomised Hadamard transform
 * (energy balanced, alpha ~ G; R must be a power of two). Per layer and shard,
 * alpha_i = E||c||^2 / E||(c U)_i||^2, computed from the same second moment.
 */
import { eigh } from '../linalg/eigh.js';
import { isPowerOfTwo, randomizedHadamardMatrix } from '../linalg/hadamard.js';
import type { MlaCheckpoint, MlaLayerWeights } from '../model/mla-weights.js';
import { createTplaForwardState, type TplaShardPlan, tplaForwardToken } from './forward.js';

export type TplaTransform = 'pca' | 'hadamard' | 'identity';

/** Per layer, the uncentered second moment sum_t c_t c_t^T [R, R] of pre-norm latents, and the count. */
export interface LatentMoments {
  kvLoraRank: number;
  moments: Float64Array[];
  count: number;
}

/** Runs the exact model over the sequences and accumulates each layer's latent second moment. */
export function collectLatentMoments(
  checkpoint: MlaCheckpoint,
  sequences: readonly (readonly number[])[],
): LatentMoments {
  const { kvLoraRank: R, nLayers } = checkpoint.config;
  const moments = Array.from({ length: nLayers }, () => new Float64Array(R * R));
  let count = 0;
  for (const seq of sequences) {
    const state = createTplaForwardState(checkpoint, null, Math.max(1, seq.length));
    state.onLatent = (l, c) => {
      const m = moments[l]!;
      for (let a = 0; a < R; a++) {
        const ca = c[a]!;
        if (ca === 0) continue;
        for (let b = 0; b < R; b++) m[a * R + b] = m[a * R + b]! + ca * c[b]!;
      }
    };
    seq.forEach((t, pos) => {
      tplaForwardToken(state, t, pos, 'exact');
    });
    count += seq.length;
  }
  return { kvLoraRank: R, moments, count };
}

export interface TplaReparamOptions {
  /** G: shards the latent will be split into (divides R). */
  shards: number;
  transform: TplaTransform;
  /** Needed for 'pca' and for alpha; for 'hadamard' without moments alpha is G (balanced). */
  moments?: LatentMoments;
  /** Hadamard sign seed; default 1. */
  seed?: number;
}

export interface TplaReparamResult {
  /** The reparameterised checkpoint (the original is not changed). */
  checkpoint: MlaCheckpoint;
  plan: TplaShardPlan;
  /** Per layer U [R, R] row-major (column j = new basis vector j). */
  u: Float64Array[];
}

/** alpha_i = tr(S) / sum of diag(U^T S U) over shard i's columns. */
export function shardAlphas(moment: Float64Array, u: Float64Array, R: number, G: number): Float64Array {
  const diag = new Float64Array(R);
  for (let j = 0; j < R; j++) {
    let s = 0;
    for (let a = 0; a < R; a++) {
      const ua = u[a * R + j]!;
      if (ua === 0) continue;
      let row = 0;
      for (let b = 0; b < R; b++) row += moment[a * R + b]! * u[b * R + j]!;
      s += ua * row;
    }
    diag[j] = s;
  }
  let total = 0;
  for (let a = 0; a < R; a++) total += moment[a * R + a]!;
  const W = R / G;
  return Float64Array.from({ length: G }, (_, i) => {
    let part = 0;
    for (let j = i * W; j < (i + 1) * W; j++) part += diag[j]!;
    return part > 0 ? total / part : G;
  });
}

function reparamLayer(
  layer: MlaLayerWeights,
  u: Float64Array,
  R: number,
  E: number,
  rowsB: number,
): MlaLayerWeights {
  const kvA = layer.kvAProjWithMqa.slice();
  for (let r = 0; r < R; r++) {
    for (let e = 0; e < E; e++) {
      let s = 0;
      for (let k = 0; k < R; k++) s += u[k * R + r]! * layer.kvAProjWithMqa[k * E + e]!;
      kvA[r * E + e] = s;
    }
  }
  const gamma = layer.kvALayernorm;
  const kvB = new Float32Array(layer.kvBProj.length);
  const row = new Float64Array(R);
  for (let o = 0; o < rowsB; o++) {
    for (let k = 0; k < R; k++) row[k] = layer.kvBProj[o * R + k]! * (gamma === null ? 1 : gamma[k]!);
    for (let r = 0; r < R; r++) {
      let s = 0;
      for (let k = 0; k < R; k++) s += row[k]! * u[k * R + r]!;
      kvB[o * R + r] = s;
    }
  }
  return {
    ...layer,
    kvAProjWithMqa: kvA,
    kvBProj: kvB,
    kvALayernorm: gamma === null ? null : new Float32Array(R).fill(1),
  };
}

export function tplaReparameterize(
  checkpoint: MlaCheckpoint,
  options: TplaReparamOptions,
): TplaReparamResult {
  const { config, weights } = checkpoint;
  const R = config.kvLoraRank;
  const G = options.shards;
  if (!(Number.isInteger(G) && G >= 1 && R % G === 0)) {
    throw new RangeError(`shards (${G}) must be a positive divisor of kvLoraRank (${R})`);
  }
  if (options.moments && options.moments.kvLoraRank !== R)
    throw new RangeError('moments were collected for another latent width');
  const rowsB = config.nHeads * (config.qkNopeHeadDim + config.vHeadDim);
  const us: Float64Array[] = [];
  const alpha: Float64Array[] = [];
  const layers = weights.layers.map((layer, l) => {
    let u: Float64Array;
    if (options.transform === 'pca') {
      if (!options.moments) throw new RangeError("transform 'pca' needs calibration moments");
      u = eigh(options.moments.moments[l]!, R).vectors;
    } else if (options.transform === 'hadamard') {
      if (!isPowerOfTwo(R))
        throw new RangeError(`a Hadamard transform needs kvLoraRank a power of two, got ${R}`);
      u = randomizedHadamardMatrix(R, (options.seed ?? 1) + 7919 * l);
    } else {
      u = new Float64Array(R * R);
      for (let i = 0; i < R; i++) u[i * R + i] = 1;
    }
    us.push(u);
    alpha.push(
      options.moments ? shardAlphas(options.moments.moments[l]!, u, R, G) : new Float64Array(G).fill(G),
    );
    return reparamLayer(layer, u, R, config.dim, rowsB);
  });
  return {
    checkpoint: { config, weights: { ...weights, layers } },
    plan: { shards: G, alpha },
    u: us,
  };
}
