/**
 * External tensor data (TensorProto.data_location = EXTERNAL): the bytes live in a file next to
 * the model, named by the `location` entry, at `offset` for `length` bytes. Reads go straight
 * from a file handle into the destination buffer, one tensor at a time, so a multi-GB data file
 * is never held in memory as a whole.
 */
import * as fs from 'fs';
import * as path from 'path';
import { OnnxError, OnnxExternalDataError, OnnxFormatError } from './errors';
import { DataLocation, type TensorProto } from './proto';

/** Node refuses single reads above 2 GiB; larger tensors are read in pieces. */
const MAX_READ_CHUNK = 1 << 30;

export interface ExternalDataInfo {
  /** POSIX path relative to the model's folder. */
  location: string;
  offset: number;
  /** Absent when the tensor data runs from `offset` for exactly the size its dims imply. */
  length?: number;
  checksum?: string;
}

export function isExternalTensor(tensor: TensorProto): boolean {
  return tensor.dataLocation === DataLocation.EXTERNAL;
}

function tensorLabel(tensor: TensorProto): string {
  return `tensor '${tensor.name ?? ''}'`;
}

function parseByteCount(text: string, key: string, tensor: TensorProto): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new OnnxFormatError(`${tensorLabel(tensor)}: external data ${key} '${text}' is not a non-negative integer`);
  }
  return value;
}

/** The parsed `external_data` entries of a tensor. */
export function externalDataInfo(tensor: TensorProto): ExternalDataInfo {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  let checksum: string | undefined;
  for (const entry of tensor.externalData) {
    const value = entry.value ?? '';
    switch (entry.key) {
      case 'location':
        location = value;
        break;
      case 'offset':
        offset = parseByteCount(value, 'offset', tensor);
        break;
      case 'length':
        length = parseByteCount(value, 'length', tensor);
        break;
      case 'checksum':
        checksum = value;
        break;
    }
  }
  if (!location) throw new OnnxFormatError(`${tensorLabel(tensor)}: external data has no location`);
  const info: ExternalDataInfo = { location, offset };
  if (length !== undefined) info.length = length;
  if (checksum !== undefined) info.checksum = checksum;
  return info;
}

/**
 * The absolute path of an external data file, refusing locations that leave the model folder
 * (absolute paths, `..` segments): a model file must not make us read arbitrary files.
 */
export function resolveExternalPath(baseDir: string, location: string, tensorName = ''): string {
  const label = `tensor '${tensorName}'`;
  if (location.includes('\0')) {
    throw new OnnxExternalDataError(`${label}: external data location contains a NUL byte`);
  }
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) {
    throw new OnnxExternalDataError(
      `${label}: external data location '${location}' is absolute; it must be relative to the model folder`,
    );
  }
  const base = path.resolve(baseDir);
  const resolved = path.resolve(base, location);
  const relative = path.relative(base, resolved);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new OnnxExternalDataError(`${label}: external data location '${location}' escapes the model folder ${base}`);
  }
  return resolved;
}

/**
 * Reads the external bytes of `tensor` into a fresh, aligned buffer. `expectedBytes` is the size
 * the tensor's dims and type imply; a stored `length` that disagrees is an error.
 */
export function readExternalTensorBytes(tensor: TensorProto, baseDir: string | undefined, expectedBytes: number): Uint8Array {
  const info = externalDataInfo(tensor);
  const label = tensorLabel(tensor);
  if (baseDir === undefined) {
    throw new OnnxExternalDataError(
      `${label} stores its data in external file '${info.location}'; pass the model folder (baseDir) or load the model with loadModel(path)`,
    );
  }
  if (info.length !== undefined && info.length !== expectedBytes) {
    throw new OnnxFormatError(
      `${label}: external data length ${info.length} does not match the ${expectedBytes} bytes its shape and type need`,
    );
  }
  const file = resolveExternalPath(baseDir, info.location, tensor.name ?? '');
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'not found' : `cannot be opened (${code ?? String(error)})`;
    throw new OnnxExternalDataError(`${label}: external data file ${file} ${reason}`, { cause: error });
  }
  let out: Uint8Array;
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new OnnxExternalDataError(`${label}: external data location ${file} is not a file`);
    const size = stat.size;
    // Checked before allocating: a corrupt shape must not make us reserve memory the file cannot fill.
    if (info.offset + expectedBytes > size) {
      throw new OnnxExternalDataError(
        `${label}: external data range ${info.offset}..${info.offset + expectedBytes} lies past the end of ${file} (${size} bytes)`,
      );
    }
    try {
      out = new Uint8Array(expectedBytes);
    } catch (error) {
      throw new OnnxExternalDataError(`${label}: ${expectedBytes} bytes of external data do not fit in memory`, { cause: error });
    }
    let done = 0;
    while (done < expectedBytes) {
      const chunk = Math.min(expectedBytes - done, MAX_READ_CHUNK);
      const read = fs.readSync(fd, out, done, chunk, info.offset + done);
      if (read === 0) {
        throw new OnnxExternalDataError(`${label}: ${file} ended early at byte ${info.offset + done}`);
      }
      done += read;
    }
  } catch (error) {
    if (error instanceof OnnxError) throw error;
    throw new OnnxExternalDataError(`${label}: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  } finally {
    fs.closeSync(fd);
  }
  return out;
}
