/**
 * Cutting block-quantized weights: com.microsoft `MatMulNBits` (transformers.js q4, q4f16) and
 * `MatMulBnb4` (bnb4). Both store `W^T` (`[N, K]`) in blocks along K.
 *
 * - A cut along block boundaries keeps the stored codes, scales (in their own type, float16 for
 *   q4f16) and zero points exactly: any output columns (N) of MatMulNBits; for MatMulBnb4, whose
 *   blocks run over the flattened `[N, K]` array, only when K is a whole number of blocks; input
 *   rows (K) when the kept rows are whole blocks.
 * - A cut through a block, and any corrected rows (weight overrides), re-quantize the matrix
 *   from its dequantized values with the same scheme (bits, block size, symmetric or with zero
 *   points, NF4 or FP4) as onnxruntime's quantizers would, K padded to whole blocks again; the
 *   scales go back to their stored type as transformers.js's float16 conversion writes them.
 */
import type { HfModel, WeightMultiply } from '@zerolm/adapters';
import {
  bnb4SliceIsExact,
  DataType,
  dataTypeName,
  decodeTensor,
  decodeTensorAsFloat32,
  dequantizeBnb4,
  dequantizeNBits,
  encodeTensorData,
  newTensorProto,
  quantizeBnb4,
  quantizeNBits,
  sliceBnb4,
  sliceNBits,
  toFloat16,
  wholeBlocks,
  type NodeProto,
  type TensorProto,
} from '@zerolm/onnx';
import type { GraphEditor } from './graph-edit';
import type { ResolvedOverride } from './overrides';

/** Kept output columns and input rows of a multiply, in the consumer's orientation (`W [K, N]`). */
export interface BlockCut {
  cols?: readonly number[];
  rows?: readonly number[];
}

/** A weight the export re-quantized instead of slicing its stored codes, and why. */
export interface Requantized {
  /** The stored weight tensor in the source file. */
  readonly weight: string;
  readonly scheme: 'matmul-nbits' | 'matmul-bnb4';
  /** `cut through blocks`: the kept input rows are not whole blocks; `corrected values`: an override. */
  readonly reason: 'cut through blocks' | 'corrected values';
}

/**
 * Scales in their stored type: kept ones (`fresh` false) go back bit for bit (every float16
 * value is a float32 value); new ones are clamped to [1e-7, 1e4] in magnitude and rounded, as
 * float16.py converts the quantizer's float32 scales.
 */
function float32Bytes(type: number, values: Float32Array, name: string, fresh: boolean): Uint8Array {
  if (type === DataType.FLOAT) return encodeTensorData(type, values);
  if (type === DataType.FLOAT16) return fresh ? encodeTensorData(DataType.UINT16, toFloat16(values)) : encodeTensorData(type, values);
  throw new Error(`'${name}' is stored as ${dataTypeName(type)}: block scales must be FLOAT or FLOAT16`);
}

/** `tensor` with new values (its own data type) and dims. */
function withValues(tensor: TensorProto, dims: readonly number[], bytes: Uint8Array): TensorProto {
  const out = newTensorProto({ name: tensor.name ?? '', dims: [...dims], dataType: tensor.dataType ?? 0, rawData: bytes });
  if (tensor.docString !== undefined) out.docString = tensor.docString;
  return out;
}

/** `W [K, N]` (module orientation) keeping `rows` and `cols` of the stored `[N, K]` values. */
function keptMatrix(stored: Float32Array, k: number, rows: readonly number[], cols: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * cols.length);
  rows.forEach((r, i) => cols.forEach((c, j) => (out[i * cols.length + j] = stored[c * k + r]!)));
  return out;
}

function setIntAttribute(node: NodeProto, name: string, value: number): void {
  const attribute = node.attribute.find((a) => a.name === name);
  if (!attribute) throw new Error(`internal: ${node.opType} node '${node.name ?? ''}' has no attribute ${name}`);
  attribute.i = value;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Applies `cut` (and `override`) to the block-quantized weight of multiply `m`, replacing its
 * tensors for `m.node` and setting the node's K and N. Returns what was re-quantized, if anything.
 */
export function cutBlockQuantized(hf: HfModel, editor: GraphEditor, m: WeightMultiply, cut: BlockCut, override: ResolvedOverride | undefined): Requantized | undefined {
  const w = m.weight;
  const q = w.quantization!;
  const baseDir = hf.onnx.baseDir;
  const node = m.node;
  const [k, n] = w.shape as [number, number];
  const rows = cut.rows ?? range(k);
  const cols = cut.cols ?? range(n);
  const data = editor.index.constantTensor(w.dataName)!;
  const scales = editor.index.constantTensor(q.scale)!;
  const packed = decodeTensor(data, { baseDir }) as Uint8Array;
  const scaleValues = decodeTensorAsFloat32(scales, { baseDir });
  const scaleType = scales.dataType ?? 0;
  // Bias-only overrides leave the weight as it is.
  const corrected = override?.override.values;
  let result: Requantized | undefined;

  if (q.scheme === 'matmul-nbits') {
    if (node.input[4] || node.input[5]) throw new Error(`${node.opType} node '${node.name ?? ''}': g_idx and bias inputs cannot be pruned`);
    const shape = { k, n, bits: q.bits!, blockSize: q.blockSize! };
    const zeroTensor = q.zeroPoint ? editor.index.constantTensor(q.zeroPoint)! : undefined;
    if (zeroTensor && zeroTensor.dataType !== DataType.UINT8) {
      throw new Error(`weight '${w.dataName}': float zero points (${dataTypeName(zeroTensor.dataType ?? 0)}) of MatMulNBits cannot be pruned`);
    }
    const tensors = { packed, scales: scaleValues, ...(zeroTensor ? { zeroPoints: decodeTensor(zeroTensor, { baseDir }) as Uint8Array } : {}) };
    const blocks = corrected ? undefined : wholeBlocks(rows, k, shape.blockSize);
    let out: { tensors: { packed: Uint8Array; scales: Float32Array; zeroPoints?: Uint8Array }; shape: typeof shape };
    if (blocks) {
      out = sliceNBits(tensors, shape, cols, blocks);
    } else {
      const matrix = keptMatrix(dequantizeNBits(tensors, shape), k, rows, cols);
      if (corrected) matrix.set(Float32Array.from(corrected));
      const newShape = { ...shape, k: rows.length, n: cols.length };
      out = { tensors: quantizeNBits(matrix, newShape, !zeroTensor), shape: newShape };
      result = { weight: w.dataName, scheme: q.scheme, reason: corrected ? 'corrected values' : 'cut through blocks' };
    }
    const kBlocks = Math.ceil(out.shape.k / out.shape.blockSize);
    editor.replaceConstant(w.dataName, withValues(data, [out.shape.n, kBlocks, (out.shape.blockSize * out.shape.bits) / 8], out.tensors.packed), [node]);
    const scaleDims = scales.dims.length === 2 ? [out.shape.n, kBlocks] : [out.shape.n * kBlocks];
    editor.replaceConstant(q.scale, withValues(scales, scaleDims, float32Bytes(scaleType, out.tensors.scales, q.scale, result !== undefined)), [node]);
    if (zeroTensor && out.tensors.zeroPoints) {
      editor.replaceConstant(q.zeroPoint!, withValues(zeroTensor, zeroTensor.dims.length === 2 ? [out.shape.n, out.tensors.zeroPoints.length / out.shape.n] : [out.tensors.zeroPoints.length], out.tensors.zeroPoints), [node]);
    }
    setIntAttribute(node, 'K', out.shape.k);
    setIntAttribute(node, 'N', out.shape.n);
    return result;
  }

  if (q.scheme === 'matmul-bnb4') {
    const shape = { k, n, blockSize: q.blockSize!, quantType: q.quantType! };
    const tensors = { packed, absmax: scaleValues };
    let out: { tensors: { packed: Uint8Array; absmax: Float32Array }; shape: typeof shape };
    if (!corrected && bnb4SliceIsExact(shape, cut.rows)) {
      out = sliceBnb4(tensors, shape, cols, cut.rows);
    } else {
      const matrix = keptMatrix(dequantizeBnb4(tensors, shape), k, rows, cols);
      if (corrected) matrix.set(Float32Array.from(corrected));
      const newShape = { ...shape, k: rows.length, n: cols.length };
      out = { tensors: quantizeBnb4(matrix, newShape), shape: newShape };
      result = { weight: w.dataName, scheme: q.scheme, reason: corrected ? 'corrected values' : 'cut through blocks' };
    }
    editor.replaceConstant(w.dataName, withValues(data, [out.tensors.packed.length], out.tensors.packed), [node]);
    editor.replaceConstant(q.scale, withValues(scales, [out.tensors.absmax.length], float32Bytes(scaleType, out.tensors.absmax, q.scale, result !== undefined)), [node]);
    setIntAttribute(node, 'K', out.shape.k);
    setIntAttribute(node, 'N', out.shape.n);
    return result;
  }
  throw new Error(`internal: ${q.scheme} is not block-quantized`);
}
