/**
 * Every failure this package reports on purpose is an `OnnxError`, so callers (the CLI, the fuzz
 * test) can tell bad input apart from bugs with one `instanceof` check.
 */
export class OnnxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bytes or message contents that do not form a valid ONNX model or tensor. */
export class OnnxFormatError extends OnnxError {}

/** External tensor data that cannot be located or read (missing file, range, unsafe path). */
export class OnnxExternalDataError extends OnnxError {}
