/** Small predicates used by every public function before anything crosses into native code. */
import { describe, InvalidArgumentError, invalidArgument } from './errors.js';

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

export function intInRange(name: string, v: unknown, min: number, max = 2 ** 31 - 1): number {
  if (!isInt(v) || v < min || v > max) {
    throw invalidArgument(
      name,
      max === 2 ** 31 - 1 ? `an integer >= ${min}` : `an integer in ${min}..${max}`,
      v,
    );
  }
  return v;
}

export function finiteNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(name, 'a finite number', v);
  return v;
}

export function oneOf<T extends string>(name: string, v: unknown, values: readonly T[]): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw invalidArgument(name, `one of ${values.join(', ')}`, v);
  }
  return v as T;
}

type TypedArrayCtor =
  | Float32ArrayConstructor
  | Int32ArrayConstructor
  | Uint8ArrayConstructor
  | Uint16ArrayConstructor
  | BigInt64ArrayConstructor;

/** Checks v is an instance of ctor holding exactly `length` elements. */
export function typedArray<C extends TypedArrayCtor>(
  name: string,
  v: unknown,
  ctor: C,
  length: number,
  shape: string,
): InstanceType<C> {
  if (!(v instanceof ctor)) throw invalidArgument(name, `a ${ctor.name} ${shape}`, v);
  const arr = v as InstanceType<C>;
  if (arr.length !== length) {
    throw new InvalidArgumentError(`${name}: expected ${length} elements ${shape}, got ${arr.length}`);
  }
  return arr;
}

export function objectArg(name: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw invalidArgument(name, 'an options object', v);
  return v as Record<string, unknown>;
}

export { describe };
