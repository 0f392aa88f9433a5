/**
 * Weight-format converters over a `LazyGraph`, following the tools that write the files
 * transformers.js loads (its `scripts/quantize.py`, with onnxruntime's quantizers):
 *
 * - `quantizeDynamic8` (q8, int8, uint8): onnxruntime's `ONNXQuantizer` in dynamic IntegerOps
 *   mode. Gemm with alpha = beta = 1 and transA = 0 first becomes `MatMul` (+ `Add` of C);
 *   `MatMul(x, W)` with an initializer W becomes `DynamicQuantizeLinear(x)` (one per activation)
 *   -> `MatMulInteger(x_q, W_quantized, x_zp, W_zero_point)` -> `Cast` -> `Mul` by
 *   `Mul(x_scale, W_scale)`; an initializer table read by `Gather` becomes uint8 (asymmetric,
 *   per tensor, full range) with a `DequantizeLinear` after the Gather.
 * - `quantizeMatMulNBits` (q4): `MatMulNBitsQuantizer`, every MatMul with a 2-D initializer
 *   weight (embeddings stay float) -> com.microsoft `MatMulNBits` `<node>_Q4` reading
 *   `<W>_Q4`, `<W>_scales` (see `nbits.ts`).
 * - `quantizeMatMulBnb4` (bnb4): `MatMulBnb4Quantizer`, the same MatMuls -> `MatMulBnb4`
 *   `<node>_Bnb4` reading `<W>_Bnb4`, `<W>_absmax` (see `bnb4.ts`).
 * - `convertToFloat16` (fp16; after q4: q4f16): `float16.convert_float_to_float16(
 *   keep_io_types=True)`: float initializers and Constant values to float16, clamped to
 *   [1e-7, 1e4] in magnitude; float graph inputs cast by `<input>_fp16`, float outputs produced
 *   as `<output>_fp16` and cast back by `<output>_fp16_input_cast0`; `Cast(to=FLOAT)` nodes
 *   (blocked) keep a float output `<node>_output_cast_0`, cast on by `<node>_output_cast0`.
 *
 * Quantized values are computed once, when the first of a weight's tensors is read, and dropped
 * once all of them have been read: a writer that streams initializers holds one weight at a time.
 */
import { makeAttribute } from '../attributes';
import { makeNode as makeOnnxNode } from '../builders';
import { float32ToFloat16Bits } from '../float16';
import { AttributeType, DataType, type AttributeProto, type NodeProto, type TensorProto } from '../proto';
import { encodeTensorData, newTensorProto } from '../tensor';
import { FP4, NF4, quantizeBnb4 } from './bnb4';
import type { LazyGraph, LazyTensor, LazyValues } from './lazy-graph';
import { quantizeLinear8, type Int8Type } from './linear8';
import { quantizeNBits } from './nbits';

/** The weight formats transformers.js 4.3.1 loads besides fp32 (its dtypes). */
export const WEIGHT_FORMATS = ['fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const;
export type WeightFormat = (typeof WEIGHT_FORMATS)[number];

export interface Dynamic8Options {
  readonly weightType: Int8Type;
  /** One scale per output column of each MatMul weight (`per_channel`). */
  readonly perChannel?: boolean;
  /** 7-bit weight ranges (`reduce_range`). */
  readonly reduceRange?: boolean;
}

export interface NBitsOptions {
  readonly bits?: number;
  readonly blockSize?: number;
  readonly symmetric?: boolean;
}

export interface Bnb4Options {
  readonly blockSize?: number;
  /** 1 (NF4, default) or 0 (FP4). */
  readonly quantType?: number;
}

export interface ConvertOptions {
  /** q8 / int8 / uint8: transformers.js's convert.py sets both for most encoders (see `transformersJsPerChannel`). */
  readonly perChannel?: boolean;
  readonly reduceRange?: boolean;
}

function node(opType: string, name: string, inputs: readonly string[], outputs: readonly string[], attributes: readonly AttributeProto[] = [], domain?: string): NodeProto {
  const byName = Object.fromEntries(attributes.map((a) => [a.name as string, a]));
  return makeOnnxNode(opType, inputs, outputs, byName, domain ? { name, domain } : { name });
}

const intAttr = (name: string, value: number) => makeAttribute(name, value, AttributeType.INT);

function attributeInt(n: NodeProto, name: string, fallback: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a?.i === undefined ? fallback : Number(a.i);
}

function attributeFloat(n: NodeProto, name: string, fallback: number): number {
  return n.attribute.find((x) => x.name === name)?.f ?? fallback;
}

/**
 * Lazy tensors sharing one computation: `compute` runs when the first is read and its result is
 * dropped once every part has been read (read again, it is computed again).
 */
function sharedParts<T>(compute: () => T, parts: number): (part: number, pick: (result: T) => LazyValues) => () => LazyValues {
  let result: T | undefined;
  let read = new Set<number>();
  return (part, pick) => () => {
    if (result === undefined || read.has(part)) {
      result = compute();
      read = new Set();
    }
    const values = pick(result);
    read.add(part);
    if (read.size === parts) result = undefined;
    return values;
  };
}

function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** onnxruntime's `replace_gemm_with_matmul`, run before dynamic quantization. */
function gemmsToMatMuls(graph: LazyGraph): LazyGraph {
  let initializers = graph.initializers;
  const nodes: NodeProto[] = [];
  for (const n of graph.nodes) {
    const plain = n.opType === 'Gemm' && (n.domain ?? '') === '' && attributeFloat(n, 'alpha', 1) === 1 && attributeFloat(n, 'beta', 1) === 1 && attributeInt(n, 'transA', 0) === 0;
    if (!plain) {
      nodes.push(n);
      continue;
    }
    let b = n.input[1] as string;
    if (attributeInt(n, 'transB', 0) === 1) {
      const init = initializers.find((t) => t.name === b);
      if (init && init.dims.length === 2 && init.dataType === DataType.FLOAT) {
        // Replaced in place under the same name, moved to the end of the list.
        const [rows, cols] = init.dims as [number, number];
        const replacement: LazyTensor = { name: init.name, dataType: init.dataType, dims: [cols, rows], values: () => transposed(init.values() as Float32Array, rows, cols) };
        initializers = [...initializers.filter((t) => t !== init), replacement];
      } else {
        const t = `${b}_Transposed`;
        nodes.push(node('Transpose', n.name ? `${n.name}_Transpose` : '', [b], [t]));
        b = t;
      }
    }
    const output = n.output[0] as string;
    const hasBias = !!n.input[2];
    nodes.push(node('MatMul', n.name ? `${n.name}_MatMul` : '', [n.input[0] as string, b], [hasBias ? `${output}_MatMul` : output]));
    if (hasBias) nodes.push(node('Add', n.name ? `${n.name}_Add` : '', [`${output}_MatMul`, n.input[2] as string], [output]));
  }
  return { ...graph, nodes, initializers };
}

/** Initializers no node reads any more are dropped (onnxruntime's `clean_initializers`). */
function withoutUnused(graph: LazyGraph): LazyGraph {
  const used = new Set<string>();
  for (const n of graph.nodes) for (const i of n.input) if (i) used.add(i);
  for (const o of graph.outputs) used.add(o.name ?? '');
  return { ...graph, initializers: graph.initializers.filter((t) => used.has(t.name)) };
}

/** Dynamic 8-bit quantization (transformers.js q8, int8, uint8). */
export function quantizeDynamic8(source: LazyGraph, options: Dynamic8Options): LazyGraph {
  const graph = gemmsToMatMuls(source);
  const byName = new Map(graph.initializers.map((t) => [t.name, t]));
  const appended: LazyTensor[] = [];
  const quantized = new Map<string, { quantized: string; scale: string; zeroPoint: string }>();
  const activations = new Map<string, { quantized: string; scale: string; zeroPoint: string }>();
  const nodes: NodeProto[] = [];
  const isFloatInitializer = (name: string | undefined) => name !== undefined && byName.get(name)?.dataType === DataType.FLOAT;

  /** `asTable`: an embedding table, quantized with the activation type (uint8, asymmetric, per tensor). */
  const quantizeInitializer = (name: string, asTable: boolean) => {
    const existing = quantized.get(name);
    if (existing) return existing;
    const original = byName.get(name)!;
    const type: Int8Type = asTable ? 'uint8' : options.weightType;
    const perChannel = !asTable && options.perChannel === true && original.dims.length === 2;
    const settings = {
      type,
      symmetric: !asTable && type === 'int8',
      reduceRange: !asTable && options.reduceRange === true,
      ...(perChannel ? { axis: original.dims.length - 1 } : {}),
    };
    const part = sharedParts(() => quantizeLinear8(original.values() as Float32Array, original.dims, settings), 3);
    const names = { quantized: `${name}_quantized`, scale: `${name}_scale`, zeroPoint: `${name}_zero_point` };
    const channelDims = perChannel ? [original.dims[original.dims.length - 1]!] : [];
    const zeroType = type === 'int8' ? DataType.INT8 : DataType.UINT8;
    appended.push(
      { name: names.quantized, dataType: zeroType, dims: original.dims, values: part(0, (r) => r.quantized) },
      { name: names.scale, dataType: DataType.FLOAT, dims: channelDims, values: part(1, (r) => r.scales) },
      { name: names.zeroPoint, dataType: zeroType, dims: channelDims, values: part(2, (r) => r.zeroPoints) },
    );
    quantized.set(name, names);
    return names;
  };

  for (const n of graph.nodes) {
    if (n.opType === 'MatMul' && (n.domain ?? '') === '' && isFloatInitializer(n.input[1])) {
      const x = n.input[0] as string;
      // A quantized embedding table's output is already quantized: onnxruntime's quantizer reads it
      // as it is (OLMo 2 has no norm between the embeddings and the first projections).
      let activation = activations.get(x);
      if (!activation) {
        activation = { quantized: `${x}_quantized`, scale: `${x}_scale`, zeroPoint: `${x}_zero_point` };
        nodes.push(node('DynamicQuantizeLinear', `${x}_QuantizeLinear`, [x], [activation.quantized, activation.scale, activation.zeroPoint]));
        activations.set(x, activation);
      }
      const weight = quantizeInitializer(n.input[1] as string, false);
      const output = n.output[0] as string;
      const name = `${n.name ?? ''}_quant`;
      const integer = `${output}_output_quantized`;
      const asFloat = `${integer}_cast_output`;
      const scales = `${n.name ?? ''}_quant_scales_mul:0`;
      nodes.push(
        node('MatMulInteger', name, [activation.quantized, weight.quantized, activation.zeroPoint, weight.zeroPoint], [integer]),
        node('Cast', `${integer}_cast`, [integer], [asFloat], [intAttr('to', DataType.FLOAT)]),
        node('Mul', `${n.name ?? ''}_quant_scales_mul`, [activation.scale, weight.scale], [scales]),
        node('Mul', `${n.name ?? ''}_quant_output_scale_mul`, [asFloat, scales], [output]),
      );
      continue;
    }
    if (n.opType === 'Gather' && (n.domain ?? '') === '' && isFloatInitializer(n.input[0])) {
      const table = quantizeInitializer(n.input[0] as string, true);
      const output = n.output[0] as string;
      activations.set(output, { quantized: `${output}_quantized`, scale: table.scale, zeroPoint: table.zeroPoint });
      nodes.push(
        { ...n, input: [table.quantized, ...n.input.slice(1)], output: [`${output}_quantized`] },
        node('DequantizeLinear', `${output}_DequantizeLinear`, [`${output}_quantized`, table.scale, table.zeroPoint], [output]),
      );
      continue;
    }
    nodes.push(n);
  }
  return withoutUnused({ ...graph, nodes, initializers: [...graph.initializers, ...appended] });
}

/** The MatMuls the weight-only quantizers convert: a 2-D float initializer as input B. */
function weightOnlyTargets(graph: LazyGraph): Map<NodeProto, LazyTensor> {
  const byName = new Map(graph.initializers.map((t) => [t.name, t]));
  const targets = new Map<NodeProto, LazyTensor>();
  for (const n of graph.nodes) {
    if (n.opType !== 'MatMul' || (n.domain ?? '') !== '') continue;
    const weight = byName.get(n.input[1] ?? '');
    if (weight && weight.dims.length === 2 && weight.dataType === DataType.FLOAT) targets.set(n, weight);
  }
  return targets;
}

/** MatMulNBits block quantization (transformers.js q4; onnxruntime-genai int4). */
export function quantizeMatMulNBits(graph: LazyGraph, options: NBitsOptions = {}): LazyGraph {
  const bits = options.bits ?? 4;
  const blockSize = options.blockSize ?? 32;
  const symmetric = options.symmetric ?? true;
  const targets = weightOnlyTargets(graph);
  const appended = new Map<string, LazyTensor[]>();
  const nodes = graph.nodes.map((n) => {
    const weight = targets.get(n);
    if (!weight) return n;
    const [k, n_] = weight.dims as [number, number];
    const shape = { k, n: n_, bits, blockSize };
    const name = weight.name;
    if (!appended.has(name)) {
      const kBlocks = Math.ceil(k / blockSize);
      const part = sharedParts(() => quantizeNBits(weight.values() as Float32Array, shape, symmetric), symmetric ? 2 : 3);
      const tensors: LazyTensor[] = [
        { name: `${name}_Q${bits}`, dataType: DataType.UINT8, dims: [n_, kBlocks, (blockSize * bits) / 8], values: part(0, (r) => r.packed) },
        { name: `${name}_scales`, dataType: DataType.FLOAT, dims: [n_ * kBlocks], values: part(1, (r) => r.scales) },
      ];
      if (!symmetric) {
        tensors.push({ name: `${name}_zero_points`, dataType: DataType.UINT8, dims: [n_ * Math.ceil((kBlocks * bits) / 8)], values: part(2, (r) => r.zeroPoints!) });
      }
      appended.set(name, tensors);
    }
    const inputs = [n.input[0] as string, `${name}_Q${bits}`, `${name}_scales`, ...(symmetric ? [] : [`${name}_zero_points`])];
    const attrs = [intAttr('K', k), intAttr('N', n_), intAttr('bits', bits), intAttr('block_size', blockSize)];
    return node('MatMulNBits', n.name ? `${n.name}_Q${bits}` : '', inputs, n.output, attrs, 'com.microsoft');
  });
  return withoutUnused({ ...graph, nodes, initializers: [...graph.initializers, ...[...appended.values()].flat()] });
}

/** MatMulBnb4 quantization (transformers.js bnb4). */
export function quantizeMatMulBnb4(graph: LazyGraph, options: Bnb4Options = {}): LazyGraph {
  const blockSize = options.blockSize ?? 64;
  const quantType = options.quantType ?? NF4;
  if (quantType !== NF4 && quantType !== FP4) throw new Error(`MatMulBnb4: unknown quant_type ${quantType} (0 = FP4, 1 = NF4)`);
  const targets = weightOnlyTargets(graph);
  const appended = new Map<string, LazyTensor[]>();
  const nodes = graph.nodes.map((n) => {
    const weight = targets.get(n);
    if (!weight) return n;
    const [k, n_] = weight.dims as [number, number];
    const name = weight.name;
    if (!appended.has(name)) {
      const part = sharedParts(() => quantizeBnb4(weight.values() as Float32Array, { k, n: n_, blockSize, quantType }), 2);
      appended.set(name, [
        { name: `${name}_Bnb4`, dataType: DataType.UINT8, dims: [Math.ceil((k * n_) / 2)], values: part(0, (r) => r.packed) },
        { name: `${name}_absmax`, dataType: DataType.FLOAT, dims: [Math.ceil((k * n_) / blockSize)], values: part(1, (r) => r.absmax) },
      ]);
    }
    const attrs = [intAttr('K', k), intAttr('N', n_), intAttr('block_size', blockSize), intAttr('quant_type', quantType)];
    return node('MatMulBnb4', n.name ? `${n.name}_Bnb4` : '', [n.input[0] as string, `${name}_Bnb4`, `${name}_absmax`], n.output, attrs, 'com.microsoft');
  });
  return withoutUnused({ ...graph, nodes, initializers: [...graph.initializers, ...[...appended.values()].flat()] });
}

const MIN_POSITIVE = 1e-7;
const MAX_FINITE = 1e4;

/** float32 values clamped as float16.py's `convert_np_to_float16` clamps them, as float16 bits. */
export function toFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    let v = values[i] as number;
    if (v > 0 && v < MIN_POSITIVE) v = MIN_POSITIVE;
    else if (v < 0 && v > -MIN_POSITIVE) v = -MIN_POSITIVE;
    else if (v > MAX_FINITE && v !== Infinity) v = MAX_FINITE;
    else if (v < -MAX_FINITE && v !== -Infinity) v = -MAX_FINITE;
    out[i] = float32ToFloat16Bits(v);
  }
  return out;
}

function halfTensor(tensor: TensorProto): TensorProto {
  const raw = tensor.rawData as Uint8Array;
  const floats = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  return newTensorProto({ ...tensor, dataType: DataType.FLOAT16, rawData: encodeTensorData(DataType.UINT16, toFloat16(floats)) });
}

/** transformers.js's float16 conversion with `keep_io_types` (fp16; applied to a q4 graph: q4f16). */
export function convertToFloat16(graph: LazyGraph): LazyGraph {
  const isFloat = (v: { type?: { tensorType?: { elemType?: number } } }) => v.type?.tensorType?.elemType === DataType.FLOAT;
  const floatInputs = graph.inputs.filter(isFloat).map((i) => i.name as string);
  const floatOutputs = new Set(graph.outputs.filter(isFloat).map((o) => o.name as string));
  const renamedInputs = new Map(floatInputs.map((name) => [name, `${name}_fp16`]));
  const nodes: NodeProto[] = floatInputs.map((name) => node('Cast', `${name}_fp16`, [name], [`${name}_fp16`], [intAttr('to', DataType.FLOAT16)]));
  const outputCasts: NodeProto[] = [];
  for (const original of graph.nodes) {
    const n: NodeProto = { ...original, input: original.input.map((i) => renamedInputs.get(i) ?? (floatOutputs.has(i) ? `${i}_fp16` : i)) };
    if (n.opType === 'Constant') {
      n.attribute = n.attribute.map((a) => (a.t && a.t.dataType === DataType.FLOAT && a.t.rawData ? { ...a, t: halfTensor(a.t) } : a));
    }
    const producesOutput = n.output.find((o) => floatOutputs.has(o));
    if (producesOutput !== undefined) {
      n.output = n.output.map((o) => (o === producesOutput ? `${o}_fp16` : o));
      outputCasts.push(node('Cast', `${producesOutput}_fp16_input_cast0`, [`${producesOutput}_fp16`], [producesOutput], [intAttr('to', DataType.FLOAT)]));
    }
    const castsToFloat = n.opType === 'Cast' && n.attribute.some((a) => a.name === 'to' && Number(a.i) === DataType.FLOAT);
    if (castsToFloat) {
      const output = n.output[0] as string;
      const widened = `${n.name}_output_cast_0`;
      n.output = [widened];
      nodes.push(n, node('Cast', `${n.name}_output_cast0`, [widened], [output], [intAttr('to', DataType.FLOAT16)]));
      continue;
    }
    nodes.push(n);
  }
  nodes.push(...outputCasts);
  const initializers: LazyTensor[] = graph.initializers.map((init) =>
    init.dataType === DataType.FLOAT ? { ...init, dataType: DataType.FLOAT16, values: () => toFloat16(init.values() as Float32Array) } : init,
  );
  return { ...graph, nodes, initializers };
}

/** Whether onnxruntime's q8 mode would pick uint8 weights (`QUINT8_OPS` of quantize.py). */
function needsUint8Weights(graph: LazyGraph): boolean {
  return graph.nodes.some((n) => n.opType === 'Conv' || n.opType === 'GroupQueryAttention' || n.opType === 'MultiHeadAttention');
}

/** The com.microsoft opset the quantized formats import. */
export const MICROSOFT_OPSET = { domain: 'com.microsoft', version: 1 } as const;

/**
 * `graph` (fp32) in `format`, as transformers.js's quantize.py writes it, and the opsets the
 * result needs besides the source's.
 */
export function convertGraph(graph: LazyGraph, format: WeightFormat, options: ConvertOptions = {}): { graph: LazyGraph; opsetImports: { domain: string; version: number }[] } {
  const per = { perChannel: options.perChannel === true, reduceRange: options.reduceRange === true };
  switch (format) {
    case 'fp16':
      return { graph: convertToFloat16(graph), opsetImports: [] };
    case 'q8':
      return { graph: quantizeDynamic8(graph, { weightType: needsUint8Weights(graph) ? 'uint8' : 'int8', ...per }), opsetImports: [MICROSOFT_OPSET] };
    case 'int8':
      return { graph: quantizeDynamic8(graph, { weightType: 'int8', ...per }), opsetImports: [MICROSOFT_OPSET] };
    case 'uint8':
      return { graph: quantizeDynamic8(graph, { weightType: 'uint8', ...per }), opsetImports: [MICROSOFT_OPSET] };
    case 'q4':
      return { graph: quantizeMatMulNBits(graph), opsetImports: [MICROSOFT_OPSET] };
    case 'q4f16':
      return { graph: convertToFloat16(quantizeMatMulNBits(graph)), opsetImports: [MICROSOFT_OPSET] };
    case 'bnb4':
      return { graph: quantizeMatMulBnb4(graph), opsetImports: [MICROSOFT_OPSET] };
    default:
      throw new Error(`unknown weight format '${String(format)}' (known: ${WEIGHT_FORMATS.join(', ')})`);
  }
}

/**
 * transformers.js's `convert.py` quantizes per channel with reduced range unless the model type
 * is in its `NO_PER_CHANNEL_REDUCE_RANGE_MODELS` (decoders mostly).
 */
const NO_PER_CHANNEL_REDUCE_RANGE_MODELS = new Set([
  'codegen', 'gpt2', 'gpt_bigcode', 'gptj', 'gpt-neo', 'gpt-neox', 'mpt', 'bloom', 'llama', 'gemma', 'opt', 'mistral', 'falcon', 'phi', 'phi3', 'qwen2',
  'stablelm', 'starcoder2', 'openelm', 'mobilellm', 'olmo', 'whisper', 'vision-encoder-decoder', 'owlv2', 'wavlm', 'wav2vec2', 'unispeech', 'unispeech-sat',
]);

/** The q8/int8/uint8 settings transformers.js's convert.py uses for a `model_type`. */
export function transformersJsQuantization(modelType: string): ConvertOptions {
  const on = !NO_PER_CHANNEL_REDUCE_RANGE_MODELS.has(modelType);
  return { perChannel: on, reduceRange: on };
}
