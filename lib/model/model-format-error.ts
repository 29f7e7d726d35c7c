/**
 * The one error type for model files that cannot be read: truncated files, header values that make
 * no sense, tensors of the wrong size. Callers branch on `code`, people read the message, which
 * always names the file (and the tensor when one is at fault).
 */
export class ModelFormatError extends Error {
  readonly code = 'ERR_LATENTKV_MODEL_FORMAT';
  readonly filePath: string;
  readonly tensor: string | undefined;

  constructor(filePath: string, detail: string, tensor?: string) {
    super(tensor === undefined ? `${filePath}: ${detail}` : `${filePath}: tensor ${tensor}: ${detail}`);
    this.name = 'ModelFormatError';
    this.filePath = filePath;
    this.tensor = tensor;
  }
}
