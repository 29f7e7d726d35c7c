/**
 * Typed errors with stable `code`s. Every error latentkv throws is a LatentkvError; match on
 * `code` (stable across versions) rather than on the message.
 */

export type ErrorCode =
  | 'ERR_LATENTKV_INVALID_ARGUMENT'
  | 'ERR_LATENTKV_UNSUPPORTED'
  | 'ERR_LATENTKV_OUT_OF_MEMORY'
  | 'ERR_LATENTKV_BACKEND_UNAVAILABLE'
  | 'ERR_LATENTKV_INTERNAL'
  | 'ERR_LATENTKV_DISPOSED'
  | 'ERR_LATENTKV_BINARY_MISMATCH'
  | 'ERR_LATENTKV_MODEL_FORMAT';

export class LatentkvError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An argument had the wrong type, shape, dtype, length or value. Nothing was written. */
export class InvalidArgumentError extends LatentkvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_LATENTKV_INVALID_ARGUMENT', message, options);
  }
}

/** A valid request the selected backend or ISA cannot serve. */
export class UnsupportedError extends LatentkvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_LATENTKV_UNSUPPORTED', message, options);
  }
}

/** A backend or CPU ISA asked for by name is not available on this machine. */
export class BackendUnavailableError extends LatentkvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_LATENTKV_BACKEND_UNAVAILABLE', message, options);
  }
}

/** The object was disposed and cannot be used any more. */
export class DisposedError extends LatentkvError {
  constructor(what: string) {
    super('ERR_LATENTKV_DISPOSED', `${what} has been disposed`);
  }
}

/** The native binary does not belong to this version of the JavaScript package. */
export class BinaryMismatchError extends LatentkvError {
  constructor(message: string) {
    super('ERR_LATENTKV_BINARY_MISMATCH', message);
  }
}

/** Native failure that is not the caller's fault (out of memory, internal). */
export class NativeError extends LatentkvError {}

/** Builds "<name>: expected <expected>, got <actual>". */
export function invalidArgument(name: string, expected: string, actual: unknown): InvalidArgumentError {
  return new InvalidArgumentError(`${name}: expected ${expected}, got ${describe(actual)}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (ArrayBuffer.isView(value)) {
    const length = 'length' in value ? ` of length ${(value as unknown as { length: number }).length}` : '';
    return `${value.constructor.name}${length}`;
  }
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'function') return 'a function';
  return `an object (${value.constructor?.name ?? 'Object'})`;
}

/** Converts an error thrown by the native binding into the matching typed error. */
export function fromNativeError(error: unknown): unknown {
  if (!(error instanceof Error) || typeof (error as { code?: unknown }).code !== 'string') return error;
  const code = (error as unknown as { code: string }).code;
  const options = { cause: error };
  switch (code) {
    case 'ERR_LATENTKV_INVALID_ARGUMENT':
      return new InvalidArgumentError(error.message, options);
    case 'ERR_LATENTKV_UNSUPPORTED':
      return new UnsupportedError(error.message, options);
    case 'ERR_LATENTKV_BACKEND_UNAVAILABLE':
      return new BackendUnavailableError(error.message, options);
    case 'ERR_LATENTKV_OUT_OF_MEMORY':
      return new NativeError('ERR_LATENTKV_OUT_OF_MEMORY', error.message, options);
    case 'ERR_LATENTKV_INTERNAL':
      return new NativeError('ERR_LATENTKV_INTERNAL', error.message, options);
    default:
      return error;
  }
}
