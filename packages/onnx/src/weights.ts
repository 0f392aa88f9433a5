/**
 * Resolving the weight behind a matrix-multiply input to float values, whatever way the file
 * stores it:
 *
 * - float initializers or Constant nodes (fp32, fp16, bf16, ...), possibly through `Identity`,
 *   `Cast` to a float type, and `Transpose` (swapping the last two axes);
 * - QDQ exports: `DequantizeLinear(q, scale, zero_point, axis)` feeding the MatMul, per-tensor
 *   or per-axis;
 * - onnxruntime `quantize_dynamic` exports (optimum / transformers.js `model_quantized.onnx`):
 *   `DynamicQuantizeLinear(x) -> MatMulInteger(x_q, W_quantized, x_zp, W_zero_point) -> Cast ->
 *   Mul(., Mul(x_scale, W_scale))`, where `W_scale` / `W_zero_point` are scalars or one value per
 *   output column; and the fused contrib ops `MatMulIntegerToFloat` and `DynamicQuantizeMatMul`;
 * - `Gemm` with `transA` / `transB`;
 * - the 2/4/8-bit block quantization of com.microsoft `MatMulNBits` (transformers.js `model_q4`).
 *
 * Dequantized value: `(q - zero_point) * scale`. The result names every tensor involved (the
 * provenance), so an exporter can slice the quantized values, scales and zero points
 * consistently.
 */
import { findAttribute, intAttribute } from './attributes';
import { OnnxError } from './errors';
import type { GraphIndex } from './graph';
import { DataType, dataTypeName, type NodeProto, type TensorProto } from './proto';
import { decodeTensor, decodeTensorAsFloat32, tensorElementCount } from './tensor';
import { bnb4Table, dequantizeBnb4 } from './quant/bnb4';

/** How the scale and zero point of a quantized weight were found. */
export type QuantizationScheme =
  | 'dequantize-linear'
  | 'matmul-integer'
  | 'matmul-integer-to-float'
  | 'dynamic-quantize-matmul'
  | 'matmul-nbits'
  | 'matmul-bnb4';

export interface WeightQuantization {
  readonly scheme: QuantizationScheme;
  /** Tensor (initializer or Constant output) holding the scale(s). */
  readonly scale: string;
  /** Tensor holding the zero point(s); absent means zero. */
  readonly zeroPoint?: string;
  /**
   * Axis of the stored tensor the scales run along (one scale per index on that axis);
   * absent for a single scale for the whole tensor.
   */
  readonly axis?: number;
  /**
   * Block-wise packed weights (`matmul-nbits`): bits per code and codes per block along K. The
   * stored tensor is then the packed bytes `[N, k_blocks, block_size * bits / 8]`; `storedShape`
   * and `storedValues()` describe the unpacked `[N, K]` matrix, with scales `[N, k_blocks]`.
   */
  readonly bits?: number;
  readonly blockSize?: number;
  /** `matmul-bnb4`: 1 (NF4) or 0 (FP4); the stored tensor is the packed `[N, K]` codes, the scale tensor the block absmax. */
  readonly quantType?: number;
}

export interface ResolvedWeight {
  /** The tensor the consumer reads (e.g. the MatMul input name). */
  readonly consumedName: string;
  /** The initializer or Constant output holding the stored values (quantized or float). */
  readonly dataName: string;
  readonly dataSource: 'initializer' | 'constant';
  /** Data type of the stored values (e.g. INT8 for a quantized weight, FLOAT16, FLOAT). */
  readonly dataType: number;
  /** Shape of the stored values (for bit-packed weights: of the unpacked matrix). */
  readonly storedShape: readonly number[];
  /** Shape as the consumer multiplies it (the stored shape with the last two axes swapped when `transposed`). */
  readonly shape: readonly number[];
  /**
   * Whether the consumer multiplies the transpose (last two axes) of the stored tensor, through
   * Transpose nodes or Gemm `transB`/`transA`. For a MatMul/Gemm right-hand weight, stored
   * `[out, in]` is `transposed: true`, stored `[in, out]` is `false`.
   */
  readonly transposed: boolean;
  readonly quantization?: WeightQuantization;
  /** Nodes between the stored tensor and the consumer, from the stored tensor outwards. */
  readonly path: readonly NodeProto[];
  /** Dequantized float values in the stored layout (row-major `storedShape`). */
  storedValues(): Float32Array;
  /** Dequantized float values as the consumer sees them (row-major `shape`). */
  values(): Float32Array;
  /**
   * Squared Euclidean norm of each column as the consumer sees the matrix (length `shape[1]`),
   * accumulated in float64 straight from the stored (possibly quantized) data, without
   * materialising a dequantized copy: what a Frobenius-norm statistic of a big model needs.
   */
  columnSquaredNorms(): Float64Array;
}

export interface ResolveWeightOptions {
  /** The model's folder, for initializers with external data. */
  baseDir?: string;
}

const FLOAT_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

function nodeLabel(node: NodeProto): string {
  return `${node.opType ?? '?'} node '${node.name ?? ''}'`;
}

/** Whether a Transpose node swaps exactly the last two axes of a tensor of rank `rank`. */
function swapsLastTwoAxes(node: NodeProto, rank: number): boolean {
  if (rank < 2) return false;
  const perm = findAttribute(node, 'perm')?.ints.map(Number);
  if (!perm) return rank === 2; // default: reverse all axes
  if (perm.length !== rank) return false;
  return perm.every((axis, i) => (i < rank - 2 ? axis === i : i === rank - 2 ? axis === rank - 1 : axis === rank - 2));
}

function swapLastTwo(shape: readonly number[]): number[] {
  const out = [...shape];
  const n = out.length;
  if (n >= 2) [out[n - 2], out[n - 1]] = [out[n - 1] as number, out[n - 2] as number];
  return out;
}

/** Transposes the last two axes of a row-major tensor of shape `shape`. */
export function transposeLastTwo(values: Float32Array, shape: readonly number[]): Float32Array {
  const n = shape.length;
  const rows = shape[n - 2] as number;
  const cols = shape[n - 1] as number;
  const matrix = rows * cols;
  if (n < 2 || (matrix === 0 ? values.length !== 0 : values.length % matrix !== 0)) {
    throw new OnnxError(`cannot transpose ${values.length} values as shape [${shape.join(', ')}]`);
  }
  const out = new Float32Array(values.length);
  for (let base = 0; base < values.length; base += matrix) {
    for (let r = 0; r < rows; r++) {
      const from = base + r * cols;
      for (let c = 0; c < cols; c++) out[base + c * rows + r] = values[from + c] as number;
    }
  }
  return out;
}

interface StoredTensor {
  name: string;
  tensor: TensorProto;
  source: 'initializer' | 'constant';
}

function constantSource(index: GraphIndex, name: string): StoredTensor | undefined {
  // An Identity of a constant is a constant to the index; here it is a step of the path, so the
  // stored tensor is the one that holds the data.
  if (index.producer(name)?.opType === 'Identity') return undefined;
  const tensor = index.constantTensor(name);
  if (!tensor) return undefined;
  return { name, tensor, source: index.initializer(name) ? 'initializer' : 'constant' };
}

/** Follows Identity nodes back to a constant; `path` collects them (outermost last). */
function constantThroughIdentity(index: GraphIndex, name: string, path: NodeProto[]): StoredTensor | undefined {
  let current = name;
  const identities: NodeProto[] = [];
  for (;;) {
    const stored = constantSource(index, current);
    if (stored) {
      path.push(...identities.reverse());
      return stored;
    }
    const producer = index.producer(current);
    if (!producer || producer.opType !== 'Identity' || !producer.input[0]) return undefined;
    identities.push(producer);
    current = producer.input[0];
  }
}

interface QuantParamsInput {
  scheme: QuantizationScheme;
  scale: string;
  zeroPoint?: string;
  /** Axis requested by the operator for per-axis scales (DequantizeLinear `axis`, or the column axis). */
  axis: number;
}

/** What `traceWeight` finds: the stored tensor and how it reaches the consumer. */
interface WeightChain {
  stored: StoredTensor;
  /** Nodes from the stored tensor outwards. */
  path: NodeProto[];
  transposed: boolean;
  quant?: QuantParamsInput;
}

function buildWeight(index: GraphIndex, consumedName: string, chain: WeightChain, options: ResolveWeightOptions): ResolvedWeight {
  const { stored, path, transposed } = chain;
  const storedShape = [...stored.tensor.dims];
  for (const node of path) {
    if (node.opType === 'Transpose' && !swapsLastTwoAxes(node, storedShape.length)) {
      throw new OnnxError(
        `${nodeLabel(node)}: weight '${stored.name}' is transposed with a permutation other than swapping the last two axes`,
      );
    }
  }
  if (transposed && storedShape.length < 2) {
    throw new OnnxError(`weight '${stored.name}' of rank ${storedShape.length} cannot be transposed`);
  }
  const quantization = chain.quant && describeQuantization(index, stored, chain.quant);
  const baseDir = options.baseDir;
  const storedValues = (): Float32Array =>
    quantization ? dequantize(index, stored, quantization, baseDir) : decodeTensorAsFloat32(stored.tensor, { baseDir });
  const weight: ResolvedWeight = {
    consumedName,
    dataName: stored.name,
    dataSource: stored.source,
    dataType: stored.tensor.dataType ?? DataType.UNDEFINED,
    storedShape,
    shape: transposed ? swapLastTwo(storedShape) : storedShape,
    transposed,
    path,
    storedValues,
    values: () => (transposed ? transposeLastTwo(storedValues(), storedShape) : storedValues()),
    columnSquaredNorms: () => {
      if (storedShape.length !== 2) throw new OnnxError(`weight '${stored.name}' is not a matrix: shape [${storedShape.join(', ')}]`);
      const [rows, cols] = storedShape as [number, number];
      const norms = new Float64Array(transposed ? rows : cols);
      // One pass in storage order, a row of `cols` values at a time.
      const addRow = (row: Float32Array | Float64Array, r: number) => {
        if (transposed) {
          let sum = 0;
          for (let c = 0; c < cols; c++) sum += (row[c] as number) ** 2;
          norms[r]! += sum;
        } else {
          for (let c = 0; c < cols; c++) norms[c]! += (row[c] as number) ** 2;
        }
      };
      if (quantization) {
        const row = new Float64Array(cols);
        let r = 0;
        let filled = 0;
        visitDequantized(index, stored, quantization, baseDir, (_, value) => {
          row[filled++] = value;
          if (filled === cols) {
            addRow(row, r++);
            filled = 0;
          }
        });
      } else {
        const values = decodeTensorAsFloat32(stored.tensor, { baseDir });
        for (let r = 0; r < rows; r++) addRow(values.subarray(r * cols, (r + 1) * cols), r);
      }
      return norms;
    },
  };
  return quantization ? { ...weight, quantization } : weight;
}

function requireConstant(index: GraphIndex, name: string, what: string, node: NodeProto): TensorProto {
  const tensor = index.constantTensor(name);
  if (!tensor) throw new OnnxError(`${nodeLabel(node)}: ${what} '${name}' is not a constant`);
  return tensor;
}

/** Checks the scale / zero-point shapes against the stored tensor and settles the axis. */
function describeQuantization(index: GraphIndex, stored: StoredTensor, quant: QuantParamsInput): WeightQuantization {
  const scaleTensor = index.constantTensor(quant.scale);
  const where = `weight '${stored.name}'`;
  if (!scaleTensor) throw new OnnxError(`${where}: scale '${quant.scale}' is not a constant`);
  const scaleCount = tensorElementCount(scaleTensor);
  const dims = stored.tensor.dims;
  const result: { -readonly [K in keyof WeightQuantization]: WeightQuantization[K] } = {
    scheme: quant.scheme,
    scale: quant.scale,
  };
  if (quant.zeroPoint) {
    const zeroPointTensor = index.constantTensor(quant.zeroPoint);
    if (!zeroPointTensor) throw new OnnxError(`${where}: zero point '${quant.zeroPoint}' is not a constant`);
    if (tensorElementCount(zeroPointTensor) !== scaleCount) {
      throw new OnnxError(`${where}: zero point '${quant.zeroPoint}' and scale '${quant.scale}' differ in size`);
    }
    result.zeroPoint = quant.zeroPoint;
  }
  if (scaleCount !== 1) {
    const axis = quant.axis < 0 ? quant.axis + dims.length : quant.axis;
    if (axis < 0 || axis >= dims.length || dims[axis] !== scaleCount) {
      throw new OnnxError(
        `${where}: ${scaleCount} scales in '${quant.scale}' do not match axis ${quant.axis} of shape [${dims.join(', ')}]`,
      );
    }
    result.axis = axis;
  }
  return result;
}

function dequantize(index: GraphIndex, stored: StoredTensor, quant: WeightQuantization, baseDir?: string): Float32Array {
  const out = new Float32Array(tensorElementCount(stored.tensor));
  visitDequantized(index, stored, quant, baseDir, (i, value) => {
    out[i] = value;
  });
  return out;
}

/** Calls `visit(i, (q[i] - zero_point) * scale)` for every stored element, in storage order. */
function visitDequantized(
  index: GraphIndex,
  stored: StoredTensor,
  quant: WeightQuantization,
  baseDir: string | undefined,
  visit: (i: number, value: number) => void,
): void {
  const q = decodeTensor(stored.tensor, { baseDir, int64: 'number' });
  const scales = decodeTensorAsFloat32(index.constantTensor(quant.scale) as TensorProto, { baseDir });
  const zeroPoints = quant.zeroPoint
    ? decodeTensor(index.constantTensor(quant.zeroPoint) as TensorProto, { baseDir, int64: 'number' })
    : undefined;
  const dims = stored.tensor.dims;
  const channels = scales.length;
  let inner = 1;
  if (quant.axis !== undefined) for (let d = quant.axis + 1; d < dims.length; d++) inner *= dims[d] as number;
  const block = channels * inner;
  for (let start = 0; start < q.length; start += block) {
    for (let c = 0; c < channels; c++) {
      const scale = scales[c] as number;
      const zero = zeroPoints ? Number(zeroPoints[c]) : 0;
      const from = start + c * inner;
      for (let i = from; i < from + inner; i++) visit(i, (Number(q[i]) - zero) * scale);
    }
  }
}

/**
 * Walks back from `name` through Identity, Cast (to a float type), Transpose and
 * DequantizeLinear to a constant; `undefined` when it reaches a runtime tensor first.
 */
function traceWeight(index: GraphIndex, name: string): WeightChain | undefined {
  const outer: NodeProto[] = []; // nodes passed, consumer side first
  let transposed = false;
  let current = name;
  for (;;) {
    const stored = constantSource(index, current);
    if (stored) return { stored, path: outer.reverse(), transposed };
    const node = index.producer(current);
    const input = node?.input[0];
    if (!node || !input || (node.domain ?? '') !== '') return undefined;
    switch (node.opType) {
      case 'Identity':
        break;
      case 'Cast':
        if (!FLOAT_TYPES.has(intAttribute(node, 'to', DataType.UNDEFINED))) return undefined;
        break;
      case 'Transpose':
        transposed = !transposed;
        break;
      case 'DequantizeLinear': {
        const path: NodeProto[] = [];
        const stored = constantThroughIdentity(index, input, path);
        if (!stored) return undefined;
        if (intAttribute(node, 'block_size', 0) > 0) {
          throw new OnnxError(`${nodeLabel(node)}: block-wise dequantization of '${stored.name}' is not supported`);
        }
        const scale = node.input[1];
        if (!scale) throw new OnnxError(`${nodeLabel(node)} has no scale input`);
        requireConstant(index, scale, 'scale', node);
        const quant: QuantParamsInput = { scheme: 'dequantize-linear', scale, axis: intAttribute(node, 'axis', 1) };
        if (node.input[2]) quant.zeroPoint = node.input[2];
        path.push(node, ...outer.reverse());
        return { stored, path, transposed, quant };
      }
      default:
        return undefined;
    }
    outer.push(node);
    current = input;
  }
}

/**
 * The weight behind tensor `name`, following Identity, Cast (to a float type), Transpose (last
 * two axes) and DequantizeLinear back to an initializer or Constant node. `undefined` when the
 * tensor is computed at run time. Throws `OnnxError` for a constant chain it cannot interpret
 * (e.g. a Transpose with another permutation, block-wise DequantizeLinear).
 */
export function resolveWeight(index: GraphIndex, name: string, options: ResolveWeightOptions = {}): ResolvedWeight | undefined {
  const chain = traceWeight(index, name);
  return chain && buildWeight(index, name, chain, options);
}

/** Finds `W_scale` of a MatMulInteger: output -> Cast -> Mul(., scale or Mul(x_scale, W_scale)). */
function matMulIntegerScale(index: GraphIndex, node: NodeProto): string {
  const fail = (): never => {
    throw new OnnxError(
      `${nodeLabel(node)}: cannot find the scale of its weight (expected MatMulInteger -> Cast -> Mul by the scales)`,
    );
  };
  const output = node.output[0];
  if (!output) return fail();
  for (const cast of index.consumers(output)) {
    if (cast.opType !== 'Cast' || !cast.output[0]) continue;
    for (const mul of index.consumers(cast.output[0])) {
      if (mul.opType !== 'Mul') continue;
      const other = mul.input[0] === cast.output[0] ? mul.input[1] : mul.input[0];
      if (!other) continue;
      if (index.isConstant(other)) return other;
      const scalesMul = index.producer(other);
      if (scalesMul?.opType !== 'Mul') continue;
      const [first, second] = scalesMul.input;
      const constants = [first, second].filter((n): n is string => !!n && index.isConstant(n));
      // quantize_dynamic writes Mul(activation_scale, weight_scale); the activation scale comes
      // from DynamicQuantizeLinear, so the constant one is the weight's. If both are constant
      // (static activation scale), the weight's is the second, as the quantizer orders them.
      if (constants.length === 1) return constants[0] as string;
      if (constants.length === 2 && second) return second;
    }
  }
  return fail();
}

/**
 * The weight multiplied by input `inputIndex` of a MatMul, Gemm, MatMulInteger,
 * MatMulIntegerToFloat or DynamicQuantizeMatMul node (default: the right-hand input B).
 * `undefined` when that input is computed at run time; `OnnxError` for other operators or
 * quantization patterns it cannot follow.
 */
export function resolveMatMulWeight(
  index: GraphIndex,
  node: NodeProto,
  inputIndex = 1,
  options: ResolveWeightOptions = {},
): ResolvedWeight | undefined {
  const name = node.input[inputIndex];
  if (!name) throw new OnnxError(`${nodeLabel(node)} has no input ${inputIndex}`);
  const op = node.opType ?? '';
  const domain = node.domain ?? '';

  if (domain === '' && op === 'MatMul') return resolveWeight(index, name, options);
  if (domain === '' && op === 'Gemm') {
    const chain = traceWeight(index, name);
    if (!chain) return undefined;
    const flag = inputIndex === 0 ? 'transA' : inputIndex === 1 ? 'transB' : undefined;
    if (flag && intAttribute(node, flag, 0) !== 0) chain.transposed = !chain.transposed;
    return buildWeight(index, name, chain, options);
  }

  let scale: string | undefined;
  let zeroPoint: string | undefined;
  let scheme: QuantizationScheme;
  if (domain === '' && op === 'MatMulInteger') {
    if (inputIndex !== 1) throw new OnnxError(`${nodeLabel(node)}: only the weight input B (1) can be resolved`);
    scheme = 'matmul-integer';
    zeroPoint = node.input[3];
    scale = matMulIntegerScale(index, node);
  } else if (domain === 'com.microsoft' && op === 'MatMulIntegerToFloat') {
    if (inputIndex !== 1) throw new OnnxError(`${nodeLabel(node)}: only the weight input B (1) can be resolved`);
    scheme = 'matmul-integer-to-float';
    scale = node.input[3];
    zeroPoint = node.input[5];
  } else if (domain === 'com.microsoft' && op === 'DynamicQuantizeMatMul') {
    if (inputIndex !== 1) throw new OnnxError(`${nodeLabel(node)}: only the weight input B (1) can be resolved`);
    scheme = 'dynamic-quantize-matmul';
    scale = node.input[2];
    zeroPoint = node.input[3];
  } else if (domain === 'com.microsoft' && op === 'MatMulNBits') {
    if (inputIndex !== 1) throw new OnnxError(`${nodeLabel(node)}: only the weight input B (1) can be resolved`);
    return resolveNBitsWeight(index, node, name, options);
  } else if (domain === 'com.microsoft' && op === 'MatMulBnb4') {
    if (inputIndex !== 1) throw new OnnxError(`${nodeLabel(node)}: only the weight input B (1) can be resolved`);
    return resolveBnb4Weight(index, node, name, options);
  } else {
    throw new OnnxError(`${nodeLabel(node)}: cannot resolve weights of ${domain ? `${domain}.` : ''}${op} nodes`);
  }
  if (!scale) throw new OnnxError(`${nodeLabel(node)} has no weight scale input`);

  const path: NodeProto[] = [];
  const stored = constantThroughIdentity(index, name, path);
  if (!stored) return undefined;
  requireConstant(index, scale, 'scale', node);
  // The scales of these operators are per tensor or per column of B (its last axis).
  const quant: QuantParamsInput = { scheme, scale, axis: -1 };
  if (zeroPoint) quant.zeroPoint = zeroPoint;
  return buildWeight(index, name, { stored, path, transposed: false, quant }, options);
}

/** A short description of a resolved weight for messages and reports. */
export function describeWeight(weight: ResolvedWeight): string {
  const type = dataTypeName(weight.dataType);
  const q = weight.quantization;
  const blocks = q?.bits ? `, ${q.bits}-bit blocks of ${q.blockSize}` : '';
  const quant = q ? `, ${q.scheme} scale '${q.scale}'${q.axis === undefined ? '' : ` per axis ${q.axis}`}${blocks}` : '';
  return `'${weight.dataName}' ${type} [${weight.storedShape.join(', ')}]${weight.transposed ? ' transposed' : ''}${quant}`;
}

/** Reads code `i` of `bits` bits from low-first packed bytes starting at `offset`. */
function packedCode(bytes: ArrayLike<number>, offset: number, i: number, bits: number): number {
  const bit = i * bits;
  return ((bytes[offset + (bit >> 3)] as number) >> (bit & 7)) & ((1 << bits) - 1);
}

/**
 * MatMulNBits: `Y = A · dequant(B)^T`, B packed `[N, k_blocks, blob]` (codes low-first along K),
 * scales `[N * k_blocks]`, zero points either packed like the codes (uint8, default
 * `2^(bits-1)`) or unpacked floats.
 */
function resolveNBitsWeight(index: GraphIndex, node: NodeProto, name: string, options: ResolveWeightOptions): ResolvedWeight | undefined {
  const where = nodeLabel(node);
  const k = intAttribute(node, 'K');
  const n = intAttribute(node, 'N');
  const blockSize = intAttribute(node, 'block_size');
  const bits = intAttribute(node, 'bits', 4);
  if (!k || !n || !blockSize || k < 0 || n < 0 || blockSize < 0 || ![2, 4, 8].includes(bits)) {
    throw new OnnxError(`${where}: unsupported or missing attributes K=${k}, N=${n}, block_size=${blockSize}, bits=${bits}`);
  }
  if (node.input[4]) throw new OnnxError(`${where}: g_idx (act-order) quantization is not supported`);
  const path: NodeProto[] = [];
  const stored = constantThroughIdentity(index, name, path);
  if (!stored) return undefined;
  const kBlocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const dims = stored.tensor.dims;
  if (stored.tensor.dataType !== DataType.UINT8 || dims.length !== 3 || dims[0] !== n || dims[1] !== kBlocks || dims[2] !== blob) {
    throw new OnnxError(
      `${where}: weight '${stored.name}' is ${dataTypeName(stored.tensor.dataType ?? 0)} [${dims.join(', ')}], expected UINT8 [${n}, ${kBlocks}, ${blob}]`,
    );
  }
  if (stored.tensor.rawData && stored.tensor.rawData.byteLength !== n * kBlocks * blob) {
    throw new OnnxError(`${where}: weight '${stored.name}' holds ${stored.tensor.rawData.byteLength} bytes, expected ${n * kBlocks * blob} for [${n}, ${kBlocks}, ${blob}]`);
  }
  const scale = node.input[2];
  if (!scale) throw new OnnxError(`${where} has no scales input`);
  const scaleTensor = requireConstant(index, scale, 'scales', node);
  if (tensorElementCount(scaleTensor) !== n * kBlocks) {
    throw new OnnxError(`${where}: scales '${scale}' hold ${tensorElementCount(scaleTensor)} values, expected ${n * kBlocks}`);
  }
  const zeroPoint = node.input[3] || undefined;
  const zeroTensor = zeroPoint ? requireConstant(index, zeroPoint, 'zero points', node) : undefined;
  const packedZeros = zeroTensor?.dataType === DataType.UINT8;
  const zeroRowBytes = Math.ceil((kBlocks * bits) / 8);
  if (zeroTensor && tensorElementCount(zeroTensor) !== n * (packedZeros ? zeroRowBytes : kBlocks)) {
    throw new OnnxError(`${where}: zero points '${zeroPoint}' do not match ${n} rows of ${kBlocks} blocks`);
  }
  const quantization: WeightQuantization = zeroPoint
    ? { scheme: 'matmul-nbits', scale, zeroPoint, bits, blockSize }
    : { scheme: 'matmul-nbits', scale, bits, blockSize };
  const baseDir = options.baseDir;
  const storedValues = (): Float32Array => {
    const codes = decodeTensor(stored.tensor, { baseDir }) as Uint8Array;
    const scales = decodeTensorAsFloat32(scaleTensor, { baseDir });
    const zeros = zeroTensor && (packedZeros ? decodeTensor(zeroTensor, { baseDir }) : decodeTensorAsFloat32(zeroTensor, { baseDir }));
    const defaultZero = 1 << (bits - 1);
    const out = new Float32Array(n * k);
    for (let row = 0; row < n; row++) {
      for (let block = 0; block < kBlocks; block++) {
        const s = scales[row * kBlocks + block] as number;
        const zero = !zeros
          ? defaultZero
          : packedZeros
            ? packedCode(zeros as Uint8Array, row * zeroRowBytes, block, bits)
            : (zeros[row * kBlocks + block] as number);
        const blobStart = (row * kBlocks + block) * blob;
        const end = Math.min(blockSize, k - block * blockSize); // the last block may be padded
        for (let i = 0; i < end; i++) {
          out[row * k + block * blockSize + i] = (packedCode(codes, blobStart, i, bits) - zero) * s;
        }
      }
    }
    return out;
  };
  return blockQuantizedWeight(name, stored, path, quantization, [k, n], storedValues);
}

/**
 * MatMulBnb4: `Y = A · dequant(B)^T`, B the packed 4-bit codes of `W^T` flattened (`[N, K]`,
 * high nibble first), one absmax per block of `block_size` flat values.
 */
function resolveBnb4Weight(index: GraphIndex, node: NodeProto, name: string, options: ResolveWeightOptions): ResolvedWeight | undefined {
  const where = nodeLabel(node);
  const k = intAttribute(node, 'K');
  const n = intAttribute(node, 'N');
  const blockSize = intAttribute(node, 'block_size');
  const quantType = intAttribute(node, 'quant_type', 1);
  if (!k || !n || !blockSize || k < 0 || n < 0 || ![16, 32, 64, 128, 256].includes(blockSize) || (quantType !== 0 && quantType !== 1)) {
    throw new OnnxError(`${where}: unsupported or missing attributes K=${k}, N=${n}, block_size=${blockSize}, quant_type=${quantType}`);
  }
  if (intAttribute(node, 'transB', 1) !== 1) throw new OnnxError(`${where}: only transB=1 (the quantizer's layout) is supported`);
  const path: NodeProto[] = [];
  const stored = constantThroughIdentity(index, name, path);
  if (!stored) return undefined;
  const bytes = Math.ceil((n * k) / 2);
  if (stored.tensor.dataType !== DataType.UINT8 || tensorElementCount(stored.tensor) !== bytes) {
    throw new OnnxError(
      `${where}: weight '${stored.name}' is ${dataTypeName(stored.tensor.dataType ?? 0)} [${stored.tensor.dims.join(', ')}], expected ${bytes} UINT8 bytes for K=${k}, N=${n}`,
    );
  }
  const scale = node.input[2];
  if (!scale) throw new OnnxError(`${where} has no absmax input`);
  const absmaxTensor = requireConstant(index, scale, 'absmax', node);
  const blocks = Math.ceil((n * k) / blockSize);
  if (tensorElementCount(absmaxTensor) !== blocks) {
    throw new OnnxError(`${where}: absmax '${scale}' holds ${tensorElementCount(absmaxTensor)} values, expected ${blocks}`);
  }
  bnb4Table(quantType);
  const baseDir = options.baseDir;
  const shape = { k, n, blockSize, quantType };
  const storedValues = (): Float32Array =>
    dequantizeBnb4({ packed: decodeTensor(stored.tensor, { baseDir }) as Uint8Array, absmax: decodeTensorAsFloat32(absmaxTensor, { baseDir }) }, shape);
  return blockQuantizedWeight(name, stored, path, { scheme: 'matmul-bnb4', scale, bits: 4, blockSize, quantType }, [k, n], storedValues);
}

/**
 * A weight stored as packed block-quantized codes of `W^T` (`[N, K]`: MatMulNBits, MatMulBnb4),
 * dequantized on demand to the module orientation `[K, N]`.
 */
function blockQuantizedWeight(
  name: string,
  stored: { readonly name: string; readonly source: ResolvedWeight['dataSource'] },
  path: NodeProto[],
  quantization: WeightQuantization,
  [k, n]: readonly [number, number],
  storedValues: () => Float32Array,
): ResolvedWeight {
  const storedShape = [n, k];
  return {
    consumedName: name,
    dataName: stored.name,
    dataSource: stored.source,
    dataType: DataType.UINT8,
    storedShape,
    shape: [k, n],
    transposed: true,
    quantization,
    path,
    storedValues,
    values: () => transposeLastTwo(storedValues(), storedShape),
    columnSquaredNorms: () => {
      const values = storedValues();
      const norms = new Float64Array(n);
      for (let i = 0; i < values.length; i++) norms[Math.floor(i / k)]! += (values[i] as number) ** 2;
      return norms;
    },
  };
}
