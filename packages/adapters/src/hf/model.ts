/**
 * A Hugging Face model folder (as transformers.js loads it) to the module graph, plus the binding
 * from each module back to the ONNX nodes and initializers it came from (what an exporter needs).
 */
import type { AttentionModule, BiasVector, FfnModule, FloatArray, Layer, MatrixRole, ModuleGraph, TaskHead, WeightMatrix } from '@zerolm/core';
import { GraphIndex, intAttribute, intsAttribute, loadModel, OnnxError, type LoadedModel, type NodeProto } from '@zerolm/onnx';
import { readFileSync } from 'fs';
import { dirname, join } from 'path';
import { findFamily } from './families';
import { unsupportedFamilyMessage } from './unsupported';
import { onnxFileFor, readConfig, resolveDtype, type DtypeChoice, type ModelDtype, type NormalizedConfig } from './config';
import { asRange } from './packing';
import { matchGraph, multiplyResult, type AttentionMatch, type GraphMatch, type LayerMatch, type WeightMultiply } from './match';

/** Where a module matrix lives in the ONNX file. */
export interface MatrixSource {
  readonly multiply: WeightMultiply;
  /** Output columns of the multiply's weight that belong to this matrix (fused QKV: one third), as a range... */
  readonly columns: readonly [number, number];
  /** ...or, where they are not one range (GPT-NeoX's per-head packing), as an explicit ascending list. */
  readonly indices?: readonly number[];
}

export interface BiasSource {
  readonly tensor: string;
  /** Elements of the bias tensor that belong to this matrix's output columns... */
  readonly range: readonly [number, number];
  /** ...or their explicit list. */
  readonly indices?: readonly number[];
}

/** The output columns of a matrix in its multiply's weight (or of a bias in its tensor). */
export function sourceColumns(source: { readonly columns?: readonly [number, number]; readonly range?: readonly [number, number]; readonly indices?: readonly number[] }): number[] {
  if (source.indices) return [...source.indices];
  const [start, end] = (source.columns ?? source.range)!;
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** Columns of a matrix: a range `[start, end)` or an explicit list. */
type Columns = readonly [number, number] | { readonly indices: readonly number[] };

function columnList(columns: Columns): number[] {
  return 'indices' in columns ? [...columns.indices] : sourceColumns({ columns });
}

export interface HfModel {
  readonly dir: string;
  readonly dtype: ModelDtype;
  readonly file: string;
  readonly config: NormalizedConfig;
  readonly onnx: LoadedModel;
  readonly index: GraphIndex;
  readonly match: GraphMatch;
  readonly graph: ModuleGraph & { readonly dtype: ModelDtype };
}

export interface LoadHfModelOptions {
  /** Which file to read (default fp32); `auto`: the most precise one present. */
  dtype?: DtypeChoice;
}

function shapeError(dir: string, message: string): never {
  throw new Error(`config.json in ${dir} contradicts the graph: ${message}`);
}

/** Output widths of a Split: its `split` input or attribute, or equal parts. */
function splitSizes(index: GraphIndex, split: NodeProto, total: number): number[] {
  const fromInput = split.input[1] ? index.constantValue(split.input[1]) : undefined;
  const sizes = fromInput ? Array.from(fromInput as ArrayLike<number | bigint>, Number) : intsAttribute(split, 'split');
  if (sizes && sizes.length > 0) return sizes;
  const parts = split.output.length;
  return Array.from({ length: parts }, () => total / parts);
}

/** Output columns of each projection: one multiply each, or one fused multiply cut by a Split. */
function projectionColumns(index: GraphIndex, a: AttentionMatch, at: string): Record<'q' | 'k' | 'v', Columns> {
  const cut = (role: 'q' | 'k' | 'v'): Columns | undefined => (a[role].indices ? { indices: a[role].indices! } : a[role].columns ? [a[role].columns![0], a[role].columns![1]] : undefined);
  const [q, k, v] = [cut('q'), cut('k'), cut('v')];
  if (q && k && v) return { q, k, v };
  const fused = a.q.multiply === a.k.multiply || a.q.multiply === a.v.multiply || a.k.multiply === a.v.multiply;
  if (!fused) {
    const cols = (role: 'q' | 'k' | 'v'): [number, number] => [0, a[role].multiply.weight.shape[1] as number];
    return { q: cols('q'), k: cols('k'), v: cols('v') };
  }
  if (a.q.multiply !== a.k.multiply || a.k.multiply !== a.v.multiply || !a.q.split || a.q.split !== a.k.split || a.k.split !== a.v.split) {
    throw new Error(`${at}: q, k and v share a projection but are not cut by one Split`);
  }
  const total = a.q.multiply.weight.shape[1] as number;
  const sizes = splitSizes(index, a.q.split, total);
  if (sizes.length !== 3 || sizes.reduce((x, y) => x + y, 0) !== total) {
    throw new Error(`${at}: the fused q/k/v Split sizes [${sizes.join(', ')}] do not cut ${total} columns in three`);
  }
  const range = (role: 'q' | 'k' | 'v'): [number, number] => {
    const part = a[role].splitIndex!;
    const start = sizes.slice(0, part).reduce((x, y) => x + y, 0);
    return [start, start + sizes[part]!];
  };
  return { q: range('q'), k: range('k'), v: range('v') };
}

function sliceColumns(values: Float32Array, rows: number, cols: number, columns: Columns): Float32Array {
  const list = columnList(columns);
  if (list.length === cols) return values;
  const range = 'indices' in columns ? undefined : columns;
  const width = list.length;
  const out = new Float32Array(rows * width);
  if (range) for (let r = 0; r < rows; r++) out.set(values.subarray(r * cols + range[0], r * cols + range[1]), r * width);
  else for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) out[r * width + c] = values[r * cols + list[c]!]!;
  return out;
}

function checkFinite(values: FloatArray, name: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i] as number)) {
      throw new Error(`weight ${name} holds ${values[i]} at element ${i}: the model's weights must be finite`);
    }
  }
}

/** Column norms of each multiply's weight, computed once: small (one number per column). */
const columnNorms = new WeakMap<WeightMultiply, Float64Array>();

function weightMatrix(role: MatrixRole, multiply: WeightMultiply, columns: Columns): WeightMatrix {
  const [rows, allCols] = multiply.weight.shape as [number, number];
  const list = columnList(columns);
  const range = 'indices' in columns ? undefined : columns;
  const name =
    list.length === allCols ? multiply.weight.dataName : range ? `${multiply.weight.dataName}[:, ${range[0]}:${range[1]}]` : `${multiply.weight.dataName}[:, ${role} of ${list.length} packed columns]`;
  const source: MatrixSource = range ? { multiply, columns: range } : { multiply, columns: [list[0]!, list[list.length - 1]! + 1], indices: list };
  return {
    name,
    role,
    rows,
    cols: list.length,
    // Not cached: a big model's matrices would all stay in memory. Consumers that reuse values
    // (the planner) keep what they need.
    values() {
      const values = sliceColumns(multiply.weight.values(), rows, allCols, columns);
      checkFinite(values, name);
      return values;
    },
    sumOfSquares() {
      let norms = columnNorms.get(multiply);
      if (!norms) columnNorms.set(multiply, (norms = multiply.weight.columnSquaredNorms()));
      let sum = 0;
      for (const c of list) sum += norms[c]!;
      if (!Number.isFinite(sum)) throw new Error(`weight ${name} holds NaN or infinite values: the model's weights must be finite`);
      return sum;
    },
    source,
  };
}

function biasVector(role: MatrixRole, multiply: WeightMultiply, columns: Columns): BiasVector[] {
  if (!multiply.bias) return [];
  const list = columnList(columns);
  const source: BiasSource = 'indices' in columns ? { tensor: multiply.bias.tensor, range: [list[0]!, list[list.length - 1]! + 1], indices: list } : { tensor: multiply.bias.tensor, range: columns };
  return [{ name: multiply.bias.tensor, role, length: list.length, source }];
}

function headsOf(width: number, headDim: number, what: string, dir: string, at: string): number {
  if (width % headDim !== 0) shapeError(dir, `${at}: the ${what} projection has ${width} output features, not a multiple of the head size ${headDim}`);
  return width / headDim;
}

/**
 * Head counts and FFN width of a layer come from the graph (a pruned or non-uniform model has
 * its own per layer); config.json gives the head size and must agree with what the graph says
 * wherever the graph states a count (reshape constants, cache shapes, the `zerolm` block).
 */
function buildLayer(match: LayerMatch, config: NormalizedConfig, index: GraphIndex, dir: string): Layer {
  const headDim = config.headDim;
  const a = match.attention;
  const at = `layer ${match.index}`;
  const columns = projectionColumns(index, a, at);
  const width = (role: 'q' | 'k' | 'v') => columnList(columns[role]).length;
  const heads = headsOf(width('q'), headDim, 'query', dir, at);
  const kvHeads = headsOf(width('k'), headDim, 'key', dir, at);
  if (width('v') !== kvHeads * headDim) shapeError(dir, `${at}: the value projection is not as wide as the key projection`);
  if (heads % kvHeads !== 0) shapeError(dir, `${at}: ${heads} query heads cannot share ${kvHeads} key-value heads`);
  const pruned = config.prunedLayers?.[match.index];
  if (pruned && (pruned.heads !== heads || pruned.kvHeads !== kvHeads)) {
    shapeError(dir, `${at}: zerolm.layers says ${pruned.heads}/${pruned.kvHeads} heads, the graph has ${heads}/${kvHeads}`);
  }
  if (!pruned && !config.prunedLayers && match.index === 0 && (heads !== config.heads || kvHeads !== config.kvHeads)) {
    // The first layer of an unpruned model is what config.json describes.
    shapeError(dir, `${at}: config says ${config.heads} heads (${config.kvHeads} key-value) of ${headDim}, the graph has ${heads} (${kvHeads})`);
  }
  const matrices: WeightMatrix[] = [];
  const biases: BiasVector[] = [];
  for (const role of ['q', 'k', 'v'] as const) {
    matrices.push(weightMatrix(role, a[role].multiply, columns[role]));
    const packed = a.fused?.packedBias;
    if (packed) biases.push({ name: packed.tensor, role, length: packed.ranges[role][1] - packed.ranges[role][0], source: { tensor: packed.tensor, range: packed.ranges[role] } satisfies BiasSource });
    else biases.push(...biasVector(role, a[role].multiply, columns[role]));
  }
  checkFusedCounts(a, heads, kvHeads, dir, at);
  for (const bias of a.headBiases ?? []) {
    const columns = Number(index.constantTensor(bias.table)!.dims[1]);
    if (columns !== heads) shapeError(dir, `${at}: the score bias table '${bias.table}' has ${columns} heads, the layer ${heads}`);
  }
  const [oRows, oCols] = a.o.weight.shape as [number, number];
  if (oRows !== heads * headDim) shapeError(dir, `${at}: the output projection reads ${oRows} features, expected ${heads} heads x ${headDim}`);
  matrices.push(weightMatrix('o', a.o, [0, oCols]));
  biases.push(...biasVector('o', a.o, [0, oCols]));
  checkCacheShapes(index, a.pastKey, kvHeads, headDim, dir, at);
  checkCacheShapes(index, a.pastValue, kvHeads, headDim, dir, at);
  checkHeadReshape(index, match, heads, kvHeads, headDim, dir);
  const attention: AttentionModule = { kind: 'attention', heads, kvHeads, headDim, matrices, biases };

  const f = match.ffn;
  const ffnWidth = f.down.weight.shape[0] as number;
  if (pruned && pruned.ffnWidth !== ffnWidth) shapeError(dir, `${at}: zerolm.layers says FFN width ${pruned.ffnWidth}, the graph has ${ffnWidth}`);
  const ffnMatrices: WeightMatrix[] = [];
  const ffnBiases: BiasVector[] = [];
  for (const [role, m] of [['up', f.up], ['gate', f.gate], ['down', f.down]] as const) {
    if (!m) continue;
    const [rows, cols] = m.weight.shape as [number, number];
    // A packed gate-up projection: each role is its part of the columns.
    const part = role === 'up' ? f.upColumns : role === 'gate' ? f.gateColumns : undefined;
    const columns: Columns = part ? (asRange(part) ?? { indices: part }) : [0, cols];
    const width = role === 'down' ? rows : columnList(columns).length;
    if (width !== ffnWidth) throw new Error(`${at}: the FFN ${role} projection has width ${width}, the down projection reads ${ffnWidth}`);
    ffnMatrices.push(weightMatrix(role, m, columns));
    ffnBiases.push(...biasVector(role, m, columns));
  }
  const ffn: FfnModule = { width: ffnWidth, activation: config.activation, matrices: ffnMatrices, biases: ffnBiases };
  return { index: match.index, attention, ffn };
}

/** A fused attention operator states its head counts in attributes; they must be the graph's. */
function checkFusedCounts(a: AttentionMatch, heads: number, kvHeads: number, dir: string, at: string): void {
  const node = a.fused?.node;
  if (!node) return;
  const stated = intAttribute(node, 'num_heads');
  if (stated !== undefined && stated !== heads) shapeError(dir, `${at}: ${node.opType} '${node.name ?? ''}' has num_heads ${stated}, its projections hold ${heads} heads`);
  const statedKv = intAttribute(node, 'kv_num_heads');
  if (statedKv !== undefined && statedKv !== kvHeads) shapeError(dir, `${at}: ${node.opType} '${node.name ?? ''}' has kv_num_heads ${statedKv}, its projections hold ${kvHeads}`);
  if (node.opType !== 'GroupQueryAttention' && heads !== kvHeads) shapeError(dir, `${at}: ${node.opType} needs as many key-value heads as query heads`);
}

/** Decoder caches are [batch, kv_heads, past, head_dim]; transformers.js allocates them from these dims. */
function checkCacheShapes(index: GraphIndex, name: string | undefined, kvHeads: number, headDim: number, dir: string, at: string): void {
  if (!name) return;
  const input = index.graph.input.find((i) => i.name === name);
  const dims = input?.type?.tensorType?.shape?.dim;
  if (!dims || dims.length !== 4) return;
  const heads = dims[1]?.dimValue;
  const size = dims[3]?.dimValue;
  if (heads !== undefined && heads !== kvHeads) shapeError(dir, `${at}: ${name} has ${heads} key-value heads, config says ${kvHeads}`);
  if (size !== undefined && size !== headDim) shapeError(dir, `${at}: ${name} has head size ${size}, config says ${headDim}`);
}

/**
 * The Reshape that splits the query into heads carries the head count when the exporter wrote
 * it as a constant; a config with a different count would make every head slice wrong.
 */
function checkHeadReshape(index: GraphIndex, match: LayerMatch, heads: number, kvHeads: number, headDim: number, dir: string): void {
  for (const role of ['q', 'k'] as const) {
    // A per-head packed projection is reshaped with the parts inside each head (GPT-NeoX).
    if (match.attention[role].indices) continue;
    const expected = role === 'q' ? heads : kvHeads;
    const start = match.attention[role].split
      ? (match.attention[role].split!.output[match.attention[role].splitIndex!] as string)
      : multiplyResult(match.attention[role].multiply);
    const reshape = index.consumers(start).find((n) => n.opType === 'Reshape');
    const shape = reshape && reshapeConstants(index, reshape.input[1] as string);
    if (!shape || shape.length < 2) continue;
    const [h, d] = shape.slice(-2) as [number | undefined, number | undefined];
    if (h === undefined || d === undefined || h <= 0 || d <= 0) continue;
    if (h !== expected || d !== headDim) {
      shapeError(dir, `layer ${match.index}: the graph splits ${role} into ${h} heads of ${d}, config says ${expected} heads of ${headDim}`);
    }
  }
}

/** The elements of a Reshape shape that are constants (undefined where computed at run time). */
export function reshapeConstants(index: GraphIndex, name: string): (number | undefined)[] | undefined {
  const constant = index.constantValue(name);
  if (constant) return Array.from(constant as ArrayLike<number | bigint>, Number);
  const concat = index.producer(name);
  if (concat?.opType !== 'Concat') return undefined;
  const out: (number | undefined)[] = [];
  for (const part of concat.input) {
    const value = part ? index.constantValue(part) : undefined;
    if (!value) {
      out.push(undefined);
      continue;
    }
    for (const v of Array.from(value as ArrayLike<number | bigint>, Number)) out.push(v);
  }
  return out;
}

/** Initializer types that hold parameters (float and 8-bit quantized); int64/int32 hold shapes. */
const PARAMETER_TYPES: ReadonlySet<number> = new Set([1, 2, 3, 10, 11, 16]);

/**
 * Parameters stored in the file outside the modules: embeddings, norms, heads. A weight multiply
 * outside the modules (the LM head) counts its logical `K x N`, whatever format packs it, and
 * not its scales or zero points (nor does a quantized embedding table), so every format of a
 * model counts the same.
 */
function otherParams(onnx: LoadedModel, layers: readonly Layer[], match: GraphMatch): number {
  const moduleTensors = new Set<string>();
  let total = 0;
  const inModules = new Set(layers.flatMap((l) => [...l.attention.matrices, ...l.ffn.matrices].map((m) => (m.source as MatrixSource).multiply)));
  for (const m of match.multiplies) {
    if (inModules.has(m) || moduleTensors.has(m.weight.dataName)) continue;
    moduleTensors.add(m.weight.dataName);
    if (m.weight.quantization) {
      moduleTensors.add(m.weight.quantization.scale);
      if (m.weight.quantization.zeroPoint) moduleTensors.add(m.weight.quantization.zeroPoint);
    }
    total += (m.weight.shape[0] as number) * (m.weight.shape[1] as number);
  }
  // A quantized embedding table counts its values, not its scale and zero point.
  for (const node of onnx.model.graph?.node ?? []) {
    if (node.opType === 'DequantizeLinear') node.input.slice(1).forEach((name) => moduleTensors.add(name));
  }
  for (const layer of layers) {
    for (const m of [...layer.attention.matrices, ...layer.ffn.matrices]) {
      const weight = (m.source as MatrixSource).multiply.weight;
      moduleTensors.add(weight.dataName);
      if (weight.quantization) {
        moduleTensors.add(weight.quantization.scale);
        if (weight.quantization.zeroPoint) moduleTensors.add(weight.quantization.zeroPoint);
      }
    }
    for (const b of [...layer.attention.biases, ...layer.ffn.biases]) moduleTensors.add(b.name);
  }
  for (const t of onnx.model.graph?.initializer ?? []) {
    if (!t.name || moduleTensors.has(t.name) || !PARAMETER_TYPES.has(t.dataType ?? 0)) continue;
    total += t.dims.reduce((a: number, b) => a * Number(b), 1);
  }
  return total;
}

/**
 * The task heads after the last layer, with their parameters counted as the module graph counts
 * matrices (rows x cols and bias, whatever the stored format: a packed 4-bit weight holds two values
 * a byte), plus the other parameters only the head reads (its norms); scales and zero points not at all.
 */
function taskHeads(onnx: LoadedModel, match: GraphMatch): TaskHead[] {
  const sizes = new Map<string, number>();
  for (const t of onnx.model.graph?.initializer ?? []) {
    if (t.name && PARAMETER_TYPES.has(t.dataType ?? 0)) sizes.set(t.name, t.dims.reduce((a: number, b) => a * Number(b), 1));
  }
  return match.heads.map((head) => {
    const counted = new Set<string>();
    let params = 0;
    for (const m of head.multiplies) {
      const q = m.weight.quantization;
      for (const name of [m.weight.dataName, q?.scale, q?.zeroPoint, m.bias?.tensor]) if (name) counted.add(name);
      params += (m.weight.shape[0] as number) * (m.weight.shape[1] as number) + (m.bias ? (m.weight.shape[1] as number) : 0);
    }
    for (const name of head.initializers) if (!counted.has(name)) params += sizes.get(name) ?? 0;
    return {
      kind: head.kind,
      params,
      matrices: head.multiplies.map((m) => ({ name: m.weight.dataName, rows: m.weight.shape[0] as number, cols: m.weight.shape[1] as number })),
    };
  });
}

/** config.json's model_type when it names no registered family (then the graph is read to say more). */
function unregisteredModelType(dir: string): string | undefined {
  try {
    const modelType = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type;
    return typeof modelType === 'string' && modelType !== '' && !findFamily(modelType) ? modelType : undefined;
  } catch {
    return undefined;
  }
}

export function loadHfModel(dir: string, options: LoadHfModelOptions = {}): HfModel {
  const unknown = unregisteredModelType(dir);
  if (unknown) {
    let file: string | undefined;
    try {
      file = onnxFileFor(dir, resolveDtype(dir, options.dtype ?? 'fp32'));
    } catch {
      file = undefined;
    }
    throw new Error(unsupportedFamilyMessage(unknown, join(dir, 'config.json'), file));
  }
  const config = readConfig(dir);
  const dtype = resolveDtype(dir, options.dtype ?? 'fp32');
  const file = onnxFileFor(dir, dtype);
  const onnx = loadModel(file);
  if (!onnx.model.graph) throw new Error(`${file} has no graph`);
  const index = new GraphIndex(onnx.model.graph);
  let match: GraphMatch;
  try {
    match = matchGraph(index, dirname(file));
  } catch (error) {
    // Name the file: a folder holds several, and the error is about one of them.
    if (error instanceof OnnxError && !error.message.includes(file)) throw new OnnxError(`${file}: ${error.message}`, { cause: error });
    throw error;
  }
  if (match.layers.length !== config.numLayers) {
    shapeError(dir, `it declares ${config.numLayers} layers, the graph has ${match.layers.length}`);
  }
  const layers = match.layers.map((m) => buildLayer(m, config, index, dir));
  const base: ModuleGraph = { name: dir, family: config.modelType, hiddenSize: config.hiddenSize, layers };
  const graph = { ...base, otherParams: otherParams(onnx, layers, match), heads: taskHeads(onnx, match), dtype };
  return { dir, dtype, file, config, onnx, index, match, graph };
}
