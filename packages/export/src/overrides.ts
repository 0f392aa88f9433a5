/**
 * Weight overrides: new values for the kept rows of a pruned layer's `o` or `down` multiply (and
 * its output bias), written by the exporter instead of the sliced originals. This is how a
 * correction such as the least-squares refit (`correction/refit.ts`) reaches the exported files.
 *
 * Values are given once, in float64 and module-graph orientation, and encoded for each file in
 * the weight's stored type and layout: fp32 as is (rounded to float32), fp16 and bf16 converted,
 * 8-bit quantized weights requantized with the file's existing scale and zero point (per tensor,
 * or per channel along whichever axis the file quantizes), `q = clamp(round_half_even(v / scale)
 * + zero_point)` to the integer type's range: values beyond the range the original scale covers
 * are clamped, never rescaled (rescaling would change the kept units' other values too).
 */
import { keptIndices, type LayerPlan, type PrunePlan } from '@zerolm/core';
import type { HfModel, MatrixSource, WeightMultiply } from '@zerolm/adapters';
import {
  DataType,
  dataTypeName,
  decodeTensor,
  decodeTensorAsFloat32,
  encodeTensorData,
  newTensorProto,
  tensorElementCount,
  type ResolvedWeight,
  type TensorProto,
} from '@zerolm/onnx';

/** New values for the kept rows of one layer's `o` or `down`, and/or its output bias. */
export interface WeightOverride {
  /** Index of the layer in the source model. */
  readonly layer: number;
  readonly role: 'o' | 'down';
  /**
   * The kept rows' new values, row-major `[kept rows, cols]` in module-graph orientation
   * (`y = x W`: rows are input features), the kept rows being the plan's, in ascending order.
   * Absent: the sliced rows are written as they are (a bias-only override).
   */
  readonly values?: ArrayLike<number>;
  /**
   * The module's new output bias (`cols` values). A multiply without a bias gets one: the
   * exporter adds the tensor and an `Add` after the multiply.
   */
  readonly bias?: ArrayLike<number>;
}

/** An override checked against one file's graph and plan. */
export interface ResolvedOverride {
  readonly override: WeightOverride;
  readonly multiply: WeightMultiply;
  readonly rows: number;
  readonly cols: number;
}

/**
 * Matches overrides to the multiplies of `hf`'s graph and checks them against the plan: a layer
 * the plan keeps and cuts rows of, as many values as kept rows x columns, all finite, a bias of
 * `cols` finite values, values or a bias or both, at most one override per layer and role.
 */
export function resolveOverrides(hf: HfModel, plan: PrunePlan, overrides: readonly WeightOverride[]): Map<WeightMultiply, ResolvedOverride> {
  const resolved = new Map<WeightMultiply, ResolvedOverride>();
  for (const override of overrides) {
    const where = `weight override for layer ${override.layer} ${override.role}`;
    if (override.role !== 'o' && override.role !== 'down') throw new Error(`${where}: the role must be o or down`);
    const layer = hf.graph.layers[override.layer];
    const lp: LayerPlan | undefined = plan.layers[override.layer];
    if (!layer || !lp) throw new Error(`${where}: the model has no layer ${override.layer}`);
    if (lp.dropped) throw new Error(`${where}: the plan drops that layer`);
    const module = override.role === 'o' ? layer.attention : layer.ffn;
    const matrix = module.matrices.find((m) => m.role === override.role);
    if (!matrix) throw new Error(`${where}: the layer has no ${override.role} matrix`);
    const kept = keptIndices(layer, matrix, lp)!;
    if (kept.length === matrix.rows) throw new Error(`${where}: the plan removes none of its rows, so there is nothing to correct`);
    const multiply = (matrix.source as MatrixSource).multiply;
    if (resolved.has(multiply)) throw new Error(`${where}: given twice`);
    const values = override.values;
    if (!values && !override.bias) throw new Error(`${where}: neither values nor a bias`);
    if (values && values.length !== kept.length * matrix.cols) {
      throw new Error(`${where}: ${values.length} values, expected ${kept.length} kept rows x ${matrix.cols} columns`);
    }
    for (let i = 0; values && i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw new Error(`${where}: value ${i} is ${values[i]}`);
    }
    if (override.bias) {
      if (override.bias.length !== matrix.cols) throw new Error(`${where}: ${override.bias.length} bias values, expected ${matrix.cols}`);
      for (let i = 0; i < override.bias.length; i++) {
        if (!Number.isFinite(override.bias[i]!)) throw new Error(`${where}: bias value ${i} is ${override.bias[i]}`);
      }
    }
    resolved.set(multiply, { override, multiply, rows: kept.length, cols: matrix.cols });
  }
  return resolved;
}

// Bound once: global lookups are slow inside Jest's vm context (see the project notes).
const { floor: floorOf, min, max } = Math;

/** Round half to even, as ONNX QuantizeLinear rounds. */
function roundHalfEven(x: number): number {
  const floor = floorOf(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

const INTEGER_RANGES: Readonly<Record<number, readonly [number, number]>> = {
  [DataType.INT8]: [-128, 127],
  [DataType.UINT8]: [0, 255],
  [DataType.INT16]: [-32768, 32767],
  [DataType.UINT16]: [0, 65535],
};

/** Quantization parameters of the (already sliced) stored tensor. */
export interface StoredQuantization {
  readonly scale: TensorProto;
  readonly zeroPoint?: TensorProto;
  /** Axis of the stored tensor the scales run along; absent for one scale. */
  readonly axis?: number;
}

/**
 * `tensor` (the sliced stored weight: kept rows x cols in the consumer's orientation, stored
 * transposed when `weight.transposed`) with its values replaced by `values` (row-major
 * `[rows, cols]`), encoded in the stored type; `quantization` for 8-bit weights.
 */
export function overriddenWeight(
  tensor: TensorProto,
  weight: ResolvedWeight,
  values: ArrayLike<number>,
  rows: number,
  cols: number,
  baseDir: string,
  quantization: StoredQuantization | undefined,
): TensorProto {
  const dims = tensor.dims.map(Number);
  const stored = weight.transposed ? [cols, rows] : [rows, cols];
  if (dims.length !== 2 || dims[0] !== stored[0] || dims[1] !== stored[1]) {
    throw new Error(`internal: weight '${weight.dataName}' is stored as [${dims.join(', ')}], expected [${stored.join(', ')}] for its override`);
  }
  // Values in storage order.
  const ordered = new Float64Array(rows * cols);
  if (weight.transposed) {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) ordered[c * rows + r] = values[r * cols + c]!;
  } else {
    for (let i = 0; i < ordered.length; i++) ordered[i] = values[i]!;
  }
  const type = tensor.dataType ?? 0;
  let encoded: Uint8Array;
  if (type === DataType.FLOAT || type === DataType.DOUBLE || type === DataType.FLOAT16 || type === DataType.BFLOAT16) {
    if (quantization) throw new Error(`weight '${weight.dataName}': a float weight behind a quantization step cannot be overridden`);
    encoded = encodeTensorData(type, type === DataType.DOUBLE ? ordered : Float32Array.from(ordered));
  } else {
    const range = INTEGER_RANGES[type];
    if (!range || !quantization) {
      throw new Error(`weight '${weight.dataName}' is stored as ${dataTypeName(type)}: corrected values can be written to float and 8-bit quantized weights only`);
    }
    const scales = decodeTensorAsFloat32(quantization.scale, { baseDir });
    const zeros = quantization.zeroPoint ? Array.from(decodeTensor(quantization.zeroPoint, { baseDir, int64: 'number' }) as ArrayLike<number>, Number) : undefined;
    const channels = scales.length;
    const axis = quantization.axis;
    if (channels !== 1 && (axis === undefined || dims[axis] !== channels)) {
      throw new Error(`internal: ${channels} scales of '${weight.dataName}' do not run along an axis of [${dims.join(', ')}]`);
    }
    const inner = axis === 1 || channels === 1 ? 1 : dims[1]!;
    const quantized = new Float64Array(ordered.length);
    for (let i = 0; i < ordered.length; i++) {
      const channel = channels === 1 ? 0 : floorOf(i / inner) % channels;
      const scale = scales[channel]!;
      const zero = zeros ? zeros[channel]! : 0;
      const q = scale === 0 ? zero : roundHalfEven(ordered[i]! / scale) + zero;
      quantized[i] = min(range[1], max(range[0], q));
    }
    encoded = encodeTensorData(type, quantized);
  }
  const out = newTensorProto({ name: tensor.name ?? weight.dataName, dims: tensor.dims, dataType: type, rawData: encoded });
  if (tensor.docString !== undefined) out.docString = tensor.docString;
  return out;
}

/** A new bias tensor of `values` in `type` (float32 unless the multiply computes in fp16 or bf16). */
export function newBias(name: string, values: ArrayLike<number>, type: number): TensorProto {
  const data = type === DataType.DOUBLE ? Float64Array.from(values) : Float32Array.from(values);
  return newTensorProto({ name, dims: [values.length], dataType: type, rawData: encodeTensorData(type, data) });
}

/** A copy of the bias `tensor` holding `values` in its own type and shape. */
export function overriddenBias(tensor: TensorProto, values: ArrayLike<number>, name: string): TensorProto {
  const type = tensor.dataType ?? 0;
  if (tensorElementCount(tensor) !== values.length) throw new Error(`internal: bias '${name}' holds ${tensorElementCount(tensor)} values, the override ${values.length}`);
  if (type !== DataType.FLOAT && type !== DataType.FLOAT16 && type !== DataType.BFLOAT16 && type !== DataType.DOUBLE) {
    throw new Error(`bias '${name}' is stored as ${dataTypeName(type)}: corrected biases can be written to float tensors only`);
  }
  const data = type === DataType.DOUBLE ? Float64Array.from(values) : Float32Array.from(values);
  return newTensorProto({ name, dims: tensor.dims, dataType: type, rawData: encodeTensorData(type, data) });
}
