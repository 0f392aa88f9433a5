/**
 * A Hugging Face model folder (as transformers.js loads it) to the module graph, plus the binding
 * from each module back to the ONNX nodes and initializers it came from (what an exporter needs).
 */
import type { AttentionModule, BiasVector, FfnModule, FloatArray, Layer, MatrixRole, ModuleGraph, TaskHead, WeightMatrix } from '@zerolm/core';
import { GraphIndex, intsAttribute, loadModel, type LoadedModel, type NodeProto } from '@zerolm/onnx';
import { dirname } from 'path';
import { onnxFileFor, readConfig, type ModelDtype, type NormalizedConfig } from './config';
import { matchGraph, multiplyResult, type AttentionMatch, type GraphMatch, type LayerMatch, type WeightMultiply } from './match';

/** Where a module matrix lives in the ONNX file. */
export interface MatrixSource {
  readonly multiply: WeightMultiply;
  /** Output columns of the multiply's weight that belong to this matrix (fused QKV: one third). */
  readonly columns: readonly [number, number];
}

export interface BiasSource {
  readonly tensor: string;
  /** Elements of the bias tensor that belong to this matrix's output columns. */
  readonly range: readonly [number, number];
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
  dtype?: ModelDtype;
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
function projectionColumns(index: GraphIndex, a: AttentionMatch, at: string): Record<'q' | 'k' | 'v', [number, number]> {
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

function sliceColumns(values: Float32Array, rows: number, cols: number, [start, end]: readonly [number, number]): Float32Array {
  if (start === 0 && end === cols) return values;
  const width = end - start;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(values.subarray(r * cols + start, r * cols + end), r * width);
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

function weightMatrix(role: MatrixRole, multiply: WeightMultiply, columns: readonly [number, number]): WeightMatrix {
  const [rows, allCols] = multiply.weight.shape as [number, number];
  const name = columns[0] === 0 && columns[1] === allCols ? multiply.weight.dataName : `${multiply.weight.dataName}[:, ${columns[0]}:${columns[1]}]`;
  const source: MatrixSource = { multiply, columns };
  return {
    name,
    role,
    rows,
    cols: columns[1] - columns[0],
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
      for (let c = columns[0]; c < columns[1]; c++) sum += norms[c]!;
      if (!Number.isFinite(sum)) throw new Error(`weight ${name} holds NaN or infinite values: the model's weights must be finite`);
      return sum;
    },
    source,
  };
}

function biasVector(role: MatrixRole, multiply: WeightMultiply, columns: readonly [number, number]): BiasVector[] {
  if (!multiply.bias) return [];
  const source: BiasSource = { tensor: multiply.bias.tensor, range: columns };
  return [{ name: multiply.bias.tensor, role, length: columns[1] - columns[0], source }];
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
  const heads = headsOf(columns.q[1] - columns.q[0], headDim, 'query', dir, at);
  const kvHeads = headsOf(columns.k[1] - columns.k[0], headDim, 'key', dir, at);
  if (columns.v[1] - columns.v[0] !== kvHeads * headDim) shapeError(dir, `${at}: the value projection is not as wide as the key projection`);
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
    biases.push(...biasVector(role, a[role].multiply, columns[role]));
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
    const width = role === 'down' ? rows : cols;
    if (width !== ffnWidth) throw new Error(`${at}: the FFN ${role} projection has width ${width}, the down projection reads ${ffnWidth}`);
    ffnMatrices.push(weightMatrix(role, m, [0, cols]));
    ffnBiases.push(...biasVector(role, m, [0, cols]));
  }
  const ffn: FfnModule = { width: ffnWidth, activation: config.activation, matrices: ffnMatrices, biases: ffnBiases };
  return { index: match.index, attention, ffn };
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

/** Parameters stored in the file outside the modules: embeddings, norms, heads. */
function otherParams(onnx: LoadedModel, layers: readonly Layer[]): number {
  const moduleTensors = new Set<string>();
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
  let total = 0;
  for (const t of onnx.model.graph?.initializer ?? []) {
    if (!t.name || moduleTensors.has(t.name) || !PARAMETER_TYPES.has(t.dataType ?? 0)) continue;
    total += t.dims.reduce((a: number, b) => a * Number(b), 1);
  }
  return total;
}

/** Parameters of the task heads after the last layer (each counted once, only what the head alone reads). */
function taskHeads(onnx: LoadedModel, match: GraphMatch): TaskHead[] {
  const sizes = new Map<string, number>();
  for (const t of onnx.model.graph?.initializer ?? []) {
    if (t.name && PARAMETER_TYPES.has(t.dataType ?? 0)) sizes.set(t.name, t.dims.reduce((a: number, b) => a * Number(b), 1));
  }
  return match.heads.map((head) => ({
    kind: head.kind,
    params: head.initializers.reduce((sum, name) => sum + (sizes.get(name) ?? 0), 0),
    matrices: head.multiplies.map((m) => ({ name: m.weight.dataName, rows: m.weight.shape[0] as number, cols: m.weight.shape[1] as number })),
  }));
}

export function loadHfModel(dir: string, options: LoadHfModelOptions = {}): HfModel {
  const config = readConfig(dir);
  const dtype = options.dtype ?? 'fp32';
  const file = onnxFileFor(dir, dtype);
  const onnx = loadModel(file);
  if (!onnx.model.graph) throw new Error(`${file} has no graph`);
  const index = new GraphIndex(onnx.model.graph);
  const match = matchGraph(index, dirname(file));
  if (match.layers.length !== config.numLayers) {
    shapeError(dir, `it declares ${config.numLayers} layers, the graph has ${match.layers.length}`);
  }
  const layers = match.layers.map((m) => buildLayer(m, config, index, dir));
  const base: ModuleGraph = { name: dir, family: config.modelType, hiddenSize: config.hiddenSize, layers };
  const graph = { ...base, otherParams: otherParams(onnx, layers), heads: taskHeads(onnx, match), dtype };
  return { dir, dtype, file, config, onnx, index, match, graph };
}
