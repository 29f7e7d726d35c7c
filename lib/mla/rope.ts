/** RoPE configuration as the kernels take it: pair layout, base, and optional scaling. */
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import type { NativeRopeParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, oneOf, typedArray } from '../validate.js';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPosition: number;
    }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPosition: number;
      betaFast?: number;
      betaSlow?: number;
      /** Multiplies cos and sin (DeepSeek's _mscale); default 1. */
      attentionFactor?: number;
    }
  /** One inverse frequency per rope pair, e.g. chosen by a conversion. */
  | { type: 'table'; invFreq: Float32Array };

export interface RopeConfig {
  /** 'interleaved' rotates pairs (2i, 2i+1) (DeepSeek, llama2.c); 'half-split' pairs (i, i+P/2) (HF Llama). */
  style: 'interleaved' | 'half-split';
  /** Base; default 10000. */
  theta?: number;
  scaling?: RopeScaling;
}

const SCALING_CODE = { none: 0, linear: 1, llama3: 2, yarn: 3, table: 4 } as const;

export function toNativeRope(name: string, rope: unknown, ropeDim: number): NativeRopeParams {
  const r = objectArg(name, rope);
  const style = oneOf(`${name}.style`, r.style, ['interleaved', 'half-split'] as const);
  const theta = r.theta === undefined ? 10000 : finiteNumber(`${name}.theta`, r.theta);
  if (theta <= 1) throw invalidArgument(`${name}.theta`, 'a number > 1', theta);
  const p: NativeRopeParams = {
    style: style === 'interleaved' ? 0 : 1,
    scaling: SCALING_CODE.none,
    theta,
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPosition: 0,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: 0,
    invFreq: undefined,
  };
  if (r.scaling === undefined) return p;
  const s = objectArg(`${name}.scaling`, r.scaling);
  const type = oneOf(`${name}.scaling.type`, s.type, ['linear', 'llama3', 'yarn', 'table'] as const);
  p.scaling = SCALING_CODE[type];
  const positive = (key: string): number => {
    const v = finiteNumber(`${name}.scaling.${key}`, s[key]);
    if (v <= 0) throw invalidArgument(`${name}.scaling.${key}`, 'a number > 0', v);
    return v;
  };
  switch (type) {
    case 'linear':
      p.factor = positive('factor');
      break;
    case 'llama3':
      p.factor = positive('factor');
      p.lowFreqFactor = positive('lowFreqFactor');
      p.highFreqFactor = positive('highFreqFactor');
      if (p.highFreqFactor <= p.lowFreqFactor) {
        throw new InvalidArgumentError(`${name}.scaling: highFreqFactor must be greater than lowFreqFactor`);
      }
      p.originalMaxPosition = intInRange(`${name}.scaling.originalMaxPosition`, s.originalMaxPosition, 1);
      break;
    case 'yarn':
      p.factor = positive('factor');
      p.originalMaxPosition = intInRange(`${name}.scaling.originalMaxPosition`, s.originalMaxPosition, 1);
      if (s.betaFast !== undefined) p.betaFast = positive('betaFast');
      if (s.betaSlow !== undefined) p.betaSlow = positive('betaSlow');
      if (s.attentionFactor !== undefined) p.attentionFactor = positive('attentionFactor');
      break;
    case 'table': {
      const table = typedArray(
        `${name}.scaling.invFreq`,
        s.invFreq,
        Float32Array,
        ropeDim / 2,
        '[ropeDim / 2]',
      );
      if (!table.every(Number.isFinite))
        throw invalidArgument(`${name}.scaling.invFreq`, 'finite values', 'NaN or Infinity');
      p.invFreq = table;
      break;
    }
  }
  return p;
}
