/**
 * Slicing stored tensors along one axis, element by element in their stored type: fp32, fp16,
 * int8 and every other fixed-width type come out bit for bit as they went in (no decode and
 * re-encode), so a kept unit keeps exactly its values.
 */
import {
  dataTypeName,
  decodeTensor,
  elementByteSize,
  encodeTensorData,
  isExternalTensor,
  newTensorProto,
  OnnxError,
  readExternalTensorBytes,
  tensorElementCount,
  DataType,
  type TensorProto,
} from '@zerolm/onnx';

/** Integer views by element width, to move one element per assignment with its bits unchanged. */
const ELEMENT_VIEWS: Record<number, Uint8ArrayConstructor | Uint16ArrayConstructor | Uint32ArrayConstructor> = {
  1: Uint8Array,
  2: Uint16Array,
  4: Uint32Array,
};

/** The little-endian element bytes of a tensor, wherever they are stored. */
export function tensorBytes(tensor: TensorProto, baseDir: string): Uint8Array {
  const size = elementByteSize(tensor.dataType ?? 0);
  if (size === undefined) {
    throw new OnnxError(`tensor '${tensor.name ?? ''}' of type ${dataTypeName(tensor.dataType ?? 0)} cannot be sliced`);
  }
  const byteLength = tensorElementCount(tensor) * size;
  if (isExternalTensor(tensor)) return readExternalTensorBytes(tensor, baseDir, byteLength);
  if (tensor.rawData !== undefined) return tensor.rawData;
  if (tensor.dataType === DataType.FLOAT16 || tensor.dataType === DataType.BFLOAT16) {
    // The typed field holds the 16-bit patterns themselves: keep them, do not round-trip floats.
    return new Uint8Array(Uint16Array.from(tensor.int32Data).buffer);
  }
  return encodeTensorData(tensor.dataType ?? 0, decodeTensor(tensor, { baseDir }) as ArrayLike<number>);
}

/**
 * A copy of `tensor` keeping only `indices` (ascending or not, each in range) along `axis`, its
 * data in `rawData`, named `name`.
 */
export function gatherTensor(tensor: TensorProto, baseDir: string, axis: number, indices: readonly number[], name: string): TensorProto {
  const dims = tensor.dims.map(Number);
  if (axis < 0 || axis >= dims.length) {
    throw new OnnxError(`tensor '${tensor.name ?? ''}' [${dims.join(', ')}] has no axis ${axis} to slice`);
  }
  const extent = dims[axis]!;
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= extent) {
      throw new OnnxError(`tensor '${tensor.name ?? ''}': index ${i} is outside axis ${axis} of size ${extent}`);
    }
  }
  const size = elementByteSize(tensor.dataType ?? 0)!;
  let bytes = tensorBytes(tensor, baseDir);
  let outer = 1;
  for (let d = 0; d < axis; d++) outer *= dims[d]!;
  let inner = 1;
  for (let d = axis + 1; d < dims.length; d++) inner *= dims[d]!;
  const out = new Uint8Array(outer * indices.length * inner * size);
  if (inner === 1 && ELEMENT_VIEWS[size]) {
    // Cutting the last axis (columns): copy element by element through views of the element width.
    if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
    const View = ELEMENT_VIEWS[size]!;
    const from = new View(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / size);
    const to = new View(out.buffer);
    const width = indices.length;
    for (let o = 0; o < outer; o++) {
      const base = o * extent;
      const target = o * width;
      for (let k = 0; k < width; k++) to[target + k] = from[base + indices[k]!]!;
    }
  } else {
    const block = inner * size;
    let target = 0;
    for (let o = 0; o < outer; o++) {
      const base = o * extent * block;
      for (const i of indices) {
        out.set(bytes.subarray(base + i * block, base + (i + 1) * block), target);
        target += block;
      }
    }
  }
  const outDims = [...dims];
  outDims[axis] = indices.length;
  const sliced = newTensorProto({ name, dims: outDims, dataType: tensor.dataType ?? 0, rawData: out });
  if (tensor.docString !== undefined) sliced.docString = tensor.docString;
  return sliced;
}

/**
 * Slices a vector-like tensor (a bias, per-channel scales: `[n]`, or `[1, .., 1, n]`) to
 * `indices` of its `n` elements; `undefined` when it holds a single broadcast value.
 */
export function gatherVector(tensor: TensorProto, baseDir: string, length: number, indices: readonly number[], name: string): TensorProto | undefined {
  const count = tensorElementCount(tensor);
  if (count === 1 && length !== 1) return undefined;
  const dims = tensor.dims.map(Number);
  if (count !== length || dims.length === 0 || dims[dims.length - 1] !== length) {
    throw new OnnxError(`tensor '${tensor.name ?? ''}' [${dims.join(', ')}] is not a vector of ${length} elements`);
  }
  return gatherTensor(tensor, baseDir, dims.length - 1, indices, name);
}
