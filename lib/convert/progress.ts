/** Progress reporting and cancellation shared by the conversion steps. */

export interface ConvertProgress {
  /** 'calibrate' | 'layer' | 'write' | ... : what is running. */
  stage: string;
  /** Layer index when the step is per layer. */
  layer?: number;
  layers?: number;
  /** Step inside the stage (e.g. 'rorope', 'bkv', 'pca', 'query'). */
  step?: string;
  /** Progress of the stage in [0, 1] where known. */
  fraction?: number;
  message: string;
}

export type ProgressCallback = (event: ConvertProgress) => void;

export class ConversionAbortedError extends Error {
  readonly code = 'ABORTED';
  constructor() {
    super('conversion aborted');
    this.name = 'ConversionAbortedError';
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ConversionAbortedError();
}
