/**
 * Models on disk: `loadModel` reads a file once and keeps its folder for external data;
 * `saveModel` writes atomically (temp file in the same folder, then rename), optionally moving
 * large initializers into an external data file.
 */
import * as fs from 'fs';
import * as path from 'path';
import { OnnxError, OnnxExternalDataError } from './errors';
import { isExternalTensor, readExternalTensorBytes, resolveExternalPath } from './external';
import { DataLocation, dataTypeName, decodeModel, encodeModel, type ModelProto, type TensorProto } from './proto';
import {
  decodeTensor,
  decodeTensorAsFloat32,
  elementByteSize,
  encodeTensorData,
  newTensorProto,
  tensorElementCount,
  type DecodeTensorOptions,
  type TensorArray,
} from './tensor';

export interface LoadedModel {
  /** Absolute path of the model file. */
  readonly path: string;
  /** Its folder, where external data locations are resolved. */
  readonly baseDir: string;
  /** The file's bytes; `rawData` fields of the model are views into them. */
  readonly bytes: Uint8Array;
  readonly model: ModelProto;
  /** `decodeTensor` with this model's folder for external data. */
  decodeTensor(tensor: TensorProto, options?: Omit<DecodeTensorOptions, 'baseDir'>): TensorArray;
  /** `decodeTensorAsFloat32` with this model's folder for external data. */
  decodeTensorAsFloat32(tensor: TensorProto): Float32Array;
}

function describeFsError(error: unknown, file: string): string {
  const { code, path: failedPath } = error as NodeJS.ErrnoException;
  if (code === 'ENOENT') return failedPath && failedPath !== file ? `no such file or folder ${failedPath}` : 'file not found';
  if (code === 'EISDIR') return 'it is a folder';
  if (code === 'ERR_FS_FILE_TOO_LARGE') return 'file larger than 2 GiB (ONNX protobuf files cannot be)';
  return error instanceof Error ? error.message : String(error);
}

/** Reads and decodes an ONNX file (one read of the file; tensor data stays in that buffer). */
export function loadModel(file: string): LoadedModel {
  const absolute = path.resolve(file);
  let buffer: Buffer;
  try {
    buffer = fs.readFileSync(absolute);
  } catch (error) {
    throw new OnnxError(`cannot read ONNX model ${absolute}: ${describeFsError(error, absolute)}`, { cause: error });
  }
  const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const model = decodeModel(bytes, { source: absolute });
  const baseDir = path.dirname(absolute);
  return {
    path: absolute,
    baseDir,
    bytes,
    model,
    decodeTensor: (tensor, options = {}) => decodeTensor(tensor, { ...options, baseDir }),
    decodeTensorAsFloat32: (tensor) => decodeTensorAsFloat32(tensor, { baseDir }),
  };
}

export interface ExternalDataOptions {
  /** Data file name, relative to the model's folder. Default: `<model file name>.data`. */
  location?: string;
  /** Initializers with at least this many data bytes go to the data file. Default 1024. */
  sizeThreshold?: number;
  /** Each tensor starts at a multiple of this many bytes (mmap-friendly). Default 4096. */
  alignment?: number;
}

export interface SaveModelOptions {
  /**
   * The folder the model's own external tensors are read from (`LoadedModel.baseDir`). Needed
   * only when the model being saved references external data.
   */
  sourceDir?: string;
  /**
   * Store large initializers of the main graph in an external data file. `'auto'`: only when the
   * file would otherwise reach `autoLimit` bytes, then in the layout `onnx.save` writes
   * (`standardExternalData`).
   */
  externalData?: boolean | ExternalDataOptions | 'auto';
  /** With `externalData: 'auto'`: the file size from which data goes external. Default `MAX_PROTOBUF_BYTES`. */
  autoLimit?: number;
}

/** What `saveModel` wrote. */
export interface SavedModel {
  /** Size of the `.onnx` file. */
  readonly bytes: number;
  /** The external data file (relative to the model's folder) and its size, when one was written. */
  readonly externalData?: { readonly location: string; readonly bytes: number };
}

/**
 * The largest ONNX protobuf (`onnx.checker.MAXIMUM_PROTOBUF`, 2 GiB): a bigger model must keep
 * its weights in external data.
 */
export const MAX_PROTOBUF_BYTES = 2 ** 31;

/**
 * The external data layout of `onnx.save(..., save_as_external_data=True,
 * all_tensors_to_one_file=True, location=<file>_data)`, which transformers.js's conversion
 * scripts and optimum write: one file `<model file name>_data` next to the model, every tensor
 * of at least 1024 bytes appended in order without padding.
 */
export function standardExternalData(modelFile: string): Required<ExternalDataOptions> {
  return { location: `${path.basename(modelFile)}_data`, sizeThreshold: 1024, alignment: 1 };
}

/** The external data files the main graph's initializers reference (`location`s, in first-use order). */
export function externalDataLocations(model: ModelProto): string[] {
  const locations = new Set<string>();
  for (const tensor of model.graph?.initializer ?? []) {
    if (!isExternalTensor(tensor)) continue;
    const location = tensor.externalData.find((e) => e.key === 'location')?.value;
    if (location) locations.add(location);
  }
  return [...locations];
}

/**
 * An upper bound (by at most 16 bytes per initializer) of the size of `model` encoded with every
 * initializer inline, computed without encoding tensor data: what decides whether it fits a
 * protobuf file.
 */
export function inlineModelSize(model: ModelProto): number {
  const graph = model.graph;
  if (!graph) return encodeModel(model).byteLength;
  let data = 0;
  const stripped = graph.initializer.map((tensor) => {
    data += (rawByteLength(tensor) ?? 0) + 16;
    return withoutData(tensor);
  });
  return encodeModel({ ...model, graph: { ...graph, initializer: stripped } }).byteLength + data;
}

function temporaryPath(target: string): string {
  const random = Math.random().toString(36).slice(2, 10);
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${random}`);
}

function writeFileDurably(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    let done = 0;
    while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Bytes a tensor's data occupies in raw (little-endian) form, or undefined for undecodable types. */
function rawByteLength(tensor: TensorProto): number | undefined {
  const size = elementByteSize(tensor.dataType ?? 0);
  return size === undefined ? undefined : tensorElementCount(tensor) * size;
}

/** The raw bytes of a tensor, whatever field or file holds them. */
function rawBytesOf(tensor: TensorProto, sourceDir: string | undefined, byteLength: number): Uint8Array {
  if (isExternalTensor(tensor)) {
    if (sourceDir === undefined) {
      throw new OnnxExternalDataError(
        `tensor '${tensor.name ?? ''}' references external data; pass sourceDir (the folder of the model it was loaded from)`,
      );
    }
    return readExternalTensorBytes(tensor, sourceDir, byteLength);
  }
  if (tensor.rawData !== undefined) return tensor.rawData;
  const values = decodeTensor(tensor);
  return encodeTensorData(tensor.dataType ?? 0, values as ArrayLike<number>);
}

/** A copy of `tensor` without data fields (the data moves to rawData or an external file). */
function withoutData(tensor: TensorProto): TensorProto {
  const copy = newTensorProto({ ...tensor, externalData: [], floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [] });
  delete copy.rawData;
  delete copy.dataLocation;
  return copy;
}

/**
 * Writes `model` to `file` atomically. With `externalData`, initializers of at least
 * `sizeThreshold` bytes are streamed one by one into the data file next to the model (itself
 * written atomically first); tensors already external are copied from `sourceDir`. Without it,
 * external tensors are read back into `rawData`; with `'auto'`, they are unless the file would
 * pass 2 GiB. The caller's model object is not modified.
 */
export function saveModel(model: ModelProto, file: string, options: SaveModelOptions = {}): SavedModel {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const external =
    options.externalData === 'auto'
      ? inlineModelSize(model) >= (options.autoLimit ?? MAX_PROTOBUF_BYTES)
        ? standardExternalData(target)
        : undefined
      : options.externalData === true
        ? {}
        : options.externalData || undefined;
  let dataWritten: { location: string; bytes: number } | undefined;
  const graph = model.graph;
  const temporaries: string[] = [];
  try {
    fs.mkdirSync(dir, { recursive: true });
    let dataTarget: string | undefined;
    let dataTemp: string | undefined;
    let initializers = graph?.initializer ?? [];

    if (external) {
      const location = external.location ?? `${path.basename(target)}.data`;
      const threshold = external.sizeThreshold ?? 1024;
      const alignment = Math.max(1, external.alignment ?? 4096);
      dataTarget = resolveExternalPath(dir, location);
      fs.mkdirSync(path.dirname(dataTarget), { recursive: true });
      dataTemp = temporaryPath(dataTarget);
      temporaries.push(dataTemp);
      const fd = fs.openSync(dataTemp, 'w');
      try {
        let offset = 0;
        initializers = initializers.map((tensor) => {
          const byteLength = rawByteLength(tensor);
          if (byteLength === undefined || (byteLength < threshold && !isExternalTensor(tensor))) return tensor;
          const bytes = rawBytesOf(tensor, options.sourceDir, byteLength);
          offset = Math.ceil(offset / alignment) * alignment;
          let done = 0;
          while (done < bytes.byteLength) {
            done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, offset + done);
          }
          const moved = withoutData(tensor);
          moved.dataLocation = DataLocation.EXTERNAL;
          moved.externalData = [
            { key: 'location', value: location },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(bytes.byteLength) },
          ];
          offset += bytes.byteLength;
          return moved;
        });
        fs.fsyncSync(fd);
        dataWritten = { location, bytes: fs.fstatSync(fd).size };
      } finally {
        fs.closeSync(fd);
      }
    } else {
      initializers = initializers.map((tensor) => {
        if (!isExternalTensor(tensor)) return tensor;
        const byteLength = rawByteLength(tensor);
        if (byteLength === undefined) {
          throw new OnnxError(`tensor '${tensor.name ?? ''}' of type ${dataTypeName(tensor.dataType ?? 0)} cannot be inlined`);
        }
        const inlined = withoutData(tensor);
        inlined.rawData = rawBytesOf(tensor, options.sourceDir, byteLength);
        return inlined;
      });
    }

    const toWrite: ModelProto = graph ? { ...model, graph: { ...graph, initializer: initializers } } : model;
    const bytes = encodeModel(toWrite);
    const modelTemp = temporaryPath(target);
    temporaries.push(modelTemp);
    writeFileDurably(modelTemp, bytes);
    if (dataTemp && dataTarget) fs.renameSync(dataTemp, dataTarget);
    fs.renameSync(modelTemp, target);
    return dataWritten ? { bytes: bytes.byteLength, externalData: dataWritten } : { bytes: bytes.byteLength };
  } catch (error) {
    for (const temp of temporaries) fs.rmSync(temp, { force: true });
    if (error instanceof OnnxError) throw error;
    throw new OnnxError(`cannot save ONNX model ${target}: ${describeFsError(error, target)}`, { cause: error });
  }
}
