/**
 * The module graph: the one in-memory description of a transformer that every adapter produces
 * and everything downstream (proxies, planner, exporter) reads.
 *
 * Orientation convention, used everywhere in the project: a weight matrix is stored as the
 * module applies it to a row vector of activations, `y = x · W`, so `rows` is the number of
 * input features and `cols` the number of output features (ONNX `MatMul(x, W)` and GPT-2
 * `Conv1D` layout; a PyTorch `Linear.weight` is the transpose). With that convention a
 * structured unit is always a contiguous range of columns in the matrices that produce the
 * unit's activations (q, k, v, up, gate) and the same range of rows in the matrix that
 * consumes them (o, down).
 */

export type FloatArray = Float32Array | Float64Array;

/** What a matrix does inside its module. `mix` is a token-mixing matrix that is not Q/K/V/O. */
export type MatrixRole = 'q' | 'k' | 'v' | 'o' | 'up' | 'gate' | 'down' | 'mix';

export const ATTENTION_ROLES: readonly MatrixRole[] = ['q', 'k', 'v', 'o', 'mix'];
export const FFN_ROLES: readonly MatrixRole[] = ['up', 'gate', 'down'];

/** A distribution weights are drawn from when a model is built from a spec rather than loaded. */
export type WeightInit =
  | { kind: 'normal'; std: number }
  | { kind: 'truncated-normal'; std: number; bound: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'zeros' };

/** A real dense 2-D matrix, row-major. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: FloatArray;
}

export interface WeightMatrix {
  /** Where the matrix comes from: an initializer name, or a path inside a spec. */
  readonly name: string;
  readonly role: MatrixRole;
  /** Input features (see the orientation convention above). */
  readonly rows: number;
  /** Output features. */
  readonly cols: number;
  /**
   * The values, row-major `rows x cols`. Lazy: loaded models decode (and dequantize) on first
   * call, spec models draw from `init` with a PRNG seeded by the matrix's identity.
   */
  values(): FloatArray;
  /**
   * ||W||_F^2 without materialising the values (e.g. straight from quantized storage), when the
   * source can; measures that only need it (msv) use it, which keeps big models cheap to score.
   */
  sumOfSquares?(): number;
  /** Present when the values are drawn from a distribution; lets measures use expected values. */
  readonly init?: WeightInit;
  /** Free-form provenance for the layer that produced the graph (the exporter needs it). */
  readonly source?: unknown;
}

/** A bias vector; counted as parameters, never part of a capacity. */
export interface BiasVector {
  readonly name: string;
  /** The matrix whose output it is added to. */
  readonly role: MatrixRole;
  readonly length: number;
  readonly source?: unknown;
}

/** The token-mixing module of a layer: attention, or an attention substitute (convolution, linear transform). */
export interface AttentionModule {
  /** `attention` for dot-product attention; anything else names the mixing operation. */
  readonly kind: string;
  /** Query heads. */
  readonly heads: number;
  /** Key-value heads (equal to `heads` without grouped-query attention). */
  readonly kvHeads: number;
  /** Width of one head in Q/K/V (0 when the module has no heads). */
  readonly headDim: number;
  readonly matrices: readonly WeightMatrix[];
  readonly biases: readonly BiasVector[];
  /** Parameters of the module that are neither matrices nor biases listed above (e.g. relative-position biases). */
  readonly otherParams?: number;
}

export interface FfnModule {
  /** Hidden width (number of neurons) of the FFN. For stacked FFNs, the width of each. */
  readonly width: number;
  /** Activation function between up (and gate) and down, as named by the source. */
  readonly activation: string;
  readonly matrices: readonly WeightMatrix[];
  readonly biases: readonly BiasVector[];
  readonly otherParams?: number;
}

export interface Layer {
  readonly index: number;
  readonly attention: AttentionModule;
  readonly ffn: FfnModule;
}

/**
 * A task head after the last layer (LM head, masked-LM head, pooler, classifier): not a layer,
 * never pruned, its parameters counted apart (they are part of `otherParams`).
 */
export interface TaskHead {
  /** `lm`, `masked-lm`, `pooler`, `classifier`, or `other`. */
  readonly kind: string;
  /** Parameters only the head holds (weights, biases, its norms). */
  readonly params: number;
  /** Its weight matrices, in order (`y = x W`). */
  readonly matrices: readonly { readonly name: string; readonly rows: number; readonly cols: number }[];
}

export interface ModuleGraph {
  /** A human-readable name (model folder, architecture id). */
  readonly name: string;
  /** Family or spec format that produced the graph (`bert`, `gpt2`, `llama`, `flexibert`, ...). */
  readonly family: string;
  /** Width of the residual stream. */
  readonly hiddenSize: number;
  readonly layers: readonly Layer[];
  /**
   * Parameters outside the Attention and FFN modules (embeddings, norms, heads), counted as the
   * source counts them. `undefined` when unknown.
   */
  readonly otherParams?: number;
  /** Task heads after the last layer, when the source tells them apart. */
  readonly heads?: readonly TaskHead[];
}

export function matrixParams(m: { rows: number; cols: number }): number {
  return m.rows * m.cols;
}

export function moduleParams(module: AttentionModule | FfnModule): number {
  let n = module.otherParams ?? 0;
  for (const m of module.matrices) n += matrixParams(m);
  for (const b of module.biases) n += b.length;
  return n;
}

export interface ParamCounts {
  attention: number;
  ffn: number;
  /** attention + ffn */
  modules: number;
  /** Parameters of the task heads after the last layer (part of total), when the graph lists its heads. */
  heads?: number;
  /** modules + otherParams, when otherParams is known */
  total?: number;
}

export function countParams(graph: ModuleGraph): ParamCounts {
  let attention = 0;
  let ffn = 0;
  for (const layer of graph.layers) {
    attention += moduleParams(layer.attention);
    ffn += moduleParams(layer.ffn);
  }
  const modules = attention + ffn;
  const counts: ParamCounts = { attention, ffn, modules };
  if (graph.heads && graph.heads.length > 0) counts.heads = graph.heads.reduce((sum, h) => sum + h.params, 0);
  if (graph.otherParams !== undefined) counts.total = modules + graph.otherParams;
  return counts;
}
