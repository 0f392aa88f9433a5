/**
 * Dense float64 algebra of the calibration (inverses of second moments, OBS downdates, the
 * least-squares refit) on onnxruntime, where it runs on the CUDA provider when that starts and on
 * the CPU provider's multi-threaded GEMM otherwise (about 6x the single-threaded TypeScript
 * kernels on the development machine's two cores). Small problems stay in TypeScript
 * (`dense.ts`): below `ORT_MIN_SIZE` a session costs more than it saves.
 *
 * onnxruntime has no Cholesky, so an inverse of a symmetric positive definite matrix is built by
 * recursive 2 x 2 block elimination (H = [A B; B^T D]: A^-1 recursively, T = A^-1 B, the Schur
 * complement S = D - B^T T, S^-1 recursively, then H^-1 = [A^-1 + T S^-1 T^T, -T S^-1; ., S^-1]),
 * with the GEMMs in onnxruntime and blocks up to `ORT_MIN_SIZE` inverted in TypeScript.
 *
 * Greedy OBS steps run as unrolled graphs: each step picks the `chunk` cheapest units by
 * ||W_j||^2 / [H^-1]_jj (TopK), and applies the block downdate with the com.microsoft `Inverse` of
 * their `chunk x chunk` block; after `steps` steps the kept block of H^-1 is compacted in place
 * and downdated by one GEMM (`OrtAlgebra.obsSteps`). Large results are written by onnxruntime
 * straight into the arrays that hold them.
 */
import {
  AttributeType,
  DataType,
  DEFAULT_IR_VERSION,
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  type NodeProto,
} from '@zerolm/onnx';
import { openSession, ort, type Device, type Provider } from '@zerolm/runtime';
import { inverseSpd } from './dense';

/**
 * No memory arena: the matrices here are hundreds of MB each (a 5632 x 5632 float64 inverse is 254
 * MB) and an arena keeps the largest set a session ever held until the session ends; without
 * it each one goes back to the system when freed.
 */
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { enableCpuMemArena: false };

const EMPTY = new Float64Array(0);

/** Matrices at most this wide are handled in TypeScript. */
export const ORT_MIN_SIZE = 768;

const OPSET = [
  { domain: '', version: 17 },
  { domain: 'com.microsoft', version: 1 },
];

function f64(data: Float64Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float64', data, dims);
}

function floatAttribute(name: string, value: number) {
  return makeAttribute(name, value, AttributeType.FLOAT);
}

function tensorData(tensor: ort.Tensor | undefined, what: string): Float64Array {
  if (!tensor || tensor.type !== 'float64') throw new Error(`internal: algebra output ${what} is missing or not float64`);
  return tensor.data as Float64Array;
}

/** The rows `r0..r1` and columns `c0..c1` of the `n`-wide `a`. */
function block(a: Float64Array, n: number, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const w = c1 - c0;
  const out = new Float64Array((r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Adds `shift` to the diagonal of the `n x n` matrix `a`, in place; returns `a`. */
function shiftDiagonal(a: Float64Array, n: number, shift: number): Float64Array {
  if (shift !== 0) for (let i = 0; i < n; i++) a[i * n + i] += shift;
  return a;
}

/**
 * Compacts the symmetric `k x k` matrix `a` in place to the rows and columns `kept` (ascending)
 * and returns that `|kept|`-square view of its start. Safe in place: every entry moves to an
 * index at or below the one it is read from, and entries are written in increasing order.
 */
function compactInPlace(a: Float64Array, k: number, kept: readonly number[]): Float64Array {
  const m = kept.length;
  for (let i = 0; i < m; i++) {
    const from = kept[i]! * k;
    const to = i * m;
    for (let j = 0; j < m; j++) a[to + j] = a[from + kept[j]!]!;
  }
  return a.subarray(0, m * m);
}

/** What `obsSteps` returns: the units removed (positions in the matrices given) and what is left. */
export interface ObsStepsResult {
  /** Per step, its `chunk` positions, cheapest first. */
  removed: number[][];
  /** Positions kept, ascending: row i of `inverse` and `weights` is position `kept[i]` of the input. */
  kept: number[];
  inverse: Float64Array;
  weights: Float64Array;
}

export class OrtAlgebra {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private constructor(
    readonly device: Device,
    readonly provider: Provider,
    readonly fallbackReason: string | undefined,
    product: ort.InferenceSession,
  ) {
    this.sessions.set('product', Promise.resolve(product));
  }

  /** Opens the provider (CUDA first with `auto`), with the product graph. */
  static async open(device: Device = 'auto'): Promise<OrtAlgebra> {
    const opened = await openSession(productGraph(), device, SESSION_OPTIONS);
    return new OrtAlgebra(device, opened.provider, opened.fallbackReason, opened.session);
  }

  private session(key: string, build: () => Uint8Array): Promise<ort.InferenceSession> {
    let session = this.sessions.get(key);
    if (!session) {
      session = openSession(build(), this.provider, SESSION_OPTIONS).then((o) => o.session);
      this.sessions.set(key, session);
    }
    return session;
  }

  /**
   * Runs the graph `key`. Outputs named in `into` are written into those tensors' arrays (no copy
   * of onnxruntime's buffer into a new one): the matrices here are large enough that the copy
   * would set the peak.
   */
  private async run(key: string, build: () => Uint8Array, feeds: Record<string, ort.Tensor>, into?: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const session = await this.session(key, build);
    try {
      return into ? await session.run(feeds, into) : await session.run(feeds);
    } catch (error) {
      throw new Error(`onnxruntime (${this.provider}) failed on the calibration algebra (${key}): ${(error as Error).message.split('\n')[0]}`);
    }
  }

  /** A B for `a` (m x k) and `b` (k x n). */
  async multiply(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Promise<Float64Array> {
    const out = await this.run('product', productGraph, { a: f64(a, [m, k]), b: f64(b, [k, n]) });
    return tensorData(out['y'], 'product');
  }

  /**
   * The inverse of `a + shift I` for the symmetric `a` (`n x n`, not modified; only its lower
   * triangle and the blocks of the recursion are read) where that is positive definite,
   * symmetric up to rounding. The shift (a ridge) is added to the blocks as they are copied out,
   * so no shifted copy of the whole matrix is made.
   */
  async inverseSpd(a: Float64Array, n: number, what = 'matrix', shift = 0): Promise<Float64Array> {
    if (n <= ORT_MIN_SIZE) return inverseSpd(shift === 0 ? a : shiftDiagonal(Float64Array.from(a), n, shift), n, what);
    // Halves on a multiple of 64 (the TypeScript kernels' block).
    const m = Math.max(64, Math.round(n / 2 / 64) * 64);
    const q = n - m;
    let top = shiftDiagonal(block(a, n, 0, m, 0, m), m, shift);
    const right = block(a, n, 0, m, m, n);
    let bottom = shiftDiagonal(block(a, n, m, n, m, n), q, shift);
    // The blocks hold all that is read of `a` from here, and each block is dropped once read: no
    // name of this frame keeps what the rest no longer needs (at a 5632 width the argument is 254
    // MB, each block 63 MB), so a caller that holds no other reference lets them be freed.
    a = EMPTY;
    const ai = await this.inverseSpd(top, m, what);
    top = EMPTY;
    const t = new Float64Array(m * q);
    let schur = new Float64Array(q * q);
    await this.run('schur', schurGraph, { ai: f64(ai, [m, m]), b: f64(right, [m, q]), d: f64(bottom, [q, q]) }, { t: f64(t, [m, q]), s: f64(schur, [q, q]) });
    bottom = EMPTY;
    // S and the blocks below are symmetric up to rounding; only their lower triangles are read by the TypeScript Cholesky.
    const si = await this.inverseSpd(schur, q, what);
    schur = EMPTY;
    // The graph writes the top rows [Ai + T Si T^T | -T Si] and the bottom rows [(-T Si)^T | Si]
    // straight into the result.
    const out = new Float64Array(n * n);
    await this.run(
      'assemble',
      assembleGraph,
      { ai: f64(ai, [m, m]), t: f64(t, [m, q]), si: f64(si, [q, q]) },
      { top: f64(out.subarray(0, m * n), [m, n]), bottom: f64(out.subarray(m * n), [q, n]) },
    );
    return out;
  }

  /**
   * `steps` greedy OBS steps of `chunk` units of one row each on (`inverse` = H^-1, `k x k`,
   * consumed: compacted in place; `weights`, `k x d`): needs k > steps * chunk.
   *
   * Two runs: the steps themselves return the rank-`steps * chunk` downdate of H^-1 as its two
   * factors (U, V) on the rows kept; H^-1 is then compacted in place here, and one GEMM writes
   * H^-1_KK - U V^T into the result. Gathering the kept block inside the first graph would hold
   * three more matrices of nearly H^-1's size at once (rows, their transpose, the block).
   */
  async obsSteps(inverse: Float64Array, weights: Float64Array, k: number, d: number, chunk: number, steps: number): Promise<ObsStepsResult> {
    const r = steps * chunk;
    if (!(k > r)) throw new Error(`internal: ${steps} OBS steps of ${chunk} need more than ${r} units (have ${k})`);
    const m = k - r;
    const diagonal = new Float64Array(k);
    for (let i = 0; i < k; i++) diagonal[i] = inverse[i * (k + 1)]!;
    const removedAll = new BigInt64Array(r);
    const keptAll = new BigInt64Array(m);
    const u = new Float64Array(m * r);
    const v = new Float64Array(m * r);
    const w = new Float64Array(m * d);
    await this.run(
      `obs/${chunk}/${steps}`,
      () => obsGraph(chunk, steps),
      { hinv: f64(inverse, [k, k]), w: f64(weights, [k, d]), diagonal: f64(diagonal, [k]), alive: f64(new Float64Array(k).fill(1), [k]) },
      {
        removed: new ort.Tensor('int64', removedAll, [r]),
        kept: new ort.Tensor('int64', keptAll, [m]),
        u_kept: f64(u, [m, r]),
        v_kept: f64(v, [m, r]),
        w_out: f64(w, [m, d]),
      },
    );
    const removed: number[][] = [];
    for (let s = 0; s < steps; s++) removed.push(Array.from(removedAll.subarray(s * chunk, (s + 1) * chunk), Number));
    const kept = Array.from(keptAll, Number);
    const stale = compactInPlace(inverse, k, kept);
    const next = new Float64Array(m * m);
    await this.run('downdate', downdateGraph, { c: f64(stale, [m, m]), u: f64(u, [m, r]), v: f64(v, [m, r]) }, { y: f64(next, [m, m]) });
    return { removed, kept, inverse: next, weights: w };
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}

function model(nodes: NodeProto[], inputs: [string, (string | number)[]][], outputs: [string, number][], extra: Parameters<typeof makeGraph>[0]['initializers'] = []): Uint8Array {
  const graph = makeGraph({
    // Named after what they make (profiles and errors name nodes).
    nodes: nodes.map((node) => ({ ...node, name: node.name ?? node.output[0] })),
    inputs: inputs.map(([name, dims]) => makeValueInfo(name, DataType.DOUBLE, dims)),
    outputs: outputs.map(([name, type]) => makeValueInfo(name, type)),
    initializers: extra,
  });
  return encodeModel(makeModel(graph, { opsetImports: OPSET, irVersion: DEFAULT_IR_VERSION }));
}

function productGraph(): Uint8Array {
  return model([makeNode('MatMul', ['a', 'b'], ['y'])], [['a', ['m', 'k']], ['b', ['k', 'n']]], [['y', DataType.DOUBLE]]);
}

/** T = Ai B, S = D - B^T T. */
function schurGraph(): Uint8Array {
  return model(
    [makeNode('MatMul', ['ai', 'b'], ['t']), makeNode('Gemm', ['b', 't', 'd'], ['s'], { transA: 1, alpha: floatAttribute('alpha', -1), beta: floatAttribute('beta', 1) })],
    [['ai', ['m', 'm']], ['b', ['m', 'q']], ['d', ['q', 'q']]],
    [['t', DataType.DOUBLE], ['s', DataType.DOUBLE]],
  );
}

/** U = T Si; the top rows [Ai + U T^T | -U], the bottom rows [-U^T | Si]. */
function assembleGraph(): Uint8Array {
  return model(
    [
      makeNode('MatMul', ['t', 'si'], ['u']),
      makeNode('Gemm', ['u', 't', 'ai'], ['tl'], { transB: 1, alpha: floatAttribute('alpha', 1), beta: floatAttribute('beta', 1) }),
      makeNode('Neg', ['u'], ['tr']),
      makeNode('Concat', ['tl', 'tr'], ['top'], { axis: 1 }),
      makeNode('Transpose', ['tr'], ['bl'], { perm: [1, 0] }),
      makeNode('Concat', ['bl', 'si'], ['bottom'], { axis: 1 }),
    ],
    [['ai', ['m', 'm']], ['t', ['m', 'q']], ['si', ['q', 'q']]],
    [['top', DataType.DOUBLE], ['bottom', DataType.DOUBLE]],
  );
}

/** C - U V^T. */
function downdateGraph(): Uint8Array {
  return model(
    [makeNode('Gemm', ['u', 'v', 'c'], ['y'], { transB: 1, alpha: floatAttribute('alpha', -1), beta: floatAttribute('beta', 1) })],
    [['c', ['m', 'm']], ['u', ['m', 'r']], ['v', ['m', 'r']]],
    [['y', DataType.DOUBLE]],
  );
}

/**
 * `steps` unrolled OBS steps of `chunk` units. The downdates of H^-1 are applied lazily, as
 * SparseGPT batches its updates: step j reads the columns of its units from the run's input
 * corrected by the steps before it (H^-1[:, R] - U V[R, :]^T, with U and V the columns and
 * scaled columns of the steps so far), and the whole run's downdate H^-1 - U V^T is left to the
 * caller: the graph returns U and V on the rows kept (`u_kept`, `v_kept`) with the diagonal of
 * H^-1 given as an input (`diagonal`). The diagonal and W are updated every step (the costs need them).
 */
export function obsGraph(chunk: number, steps: number): Uint8Array {
  const nodes: NodeProto[] = [];
  const initializers = [
    makeTensor('flat_shape', [1], BigInt64Array.from([-1n])),
    makeTensor('chunk', [1], BigInt64Array.from([BigInt(chunk)])),
    makeTensor('zeros', [chunk], new Float64Array(chunk)),
    makeTensor('half', [], Float64Array.from([0.5])),
    makeTensor('infinity', [], Float64Array.from([Infinity])),
  ];
  let diag = 'diagonal';
  let w = 'w';
  let alive = 'alive';
  let u = '';
  let v = '';
  const removed: string[] = [];
  for (let s = 0; s < steps; s++) {
    const p = (name: string) => `s${s}/${name}`;
    nodes.push(
      makeNode('ReduceSumSquare', [w], [p('norms')], { axes: [1], keepdims: 0 }),
      makeNode('Div', [p('norms'), diag], [p('cost')]),
      makeNode('Greater', [alive, 'half'], [p('is_alive')]),
      makeNode('Where', [p('is_alive'), p('cost'), 'infinity'], [p('masked')]),
      makeNode('TopK', [p('masked'), 'chunk'], [p('values'), p('removed')], { largest: 0, sorted: 1, axis: 0 }),
      makeNode('Gather', ['hinv', p('removed')], [s === 0 ? p('columns') : p('stale')], { axis: 1 }),
    );
    if (s > 0) {
      nodes.push(
        makeNode('Gather', [v, p('removed')], [p('v_rows')], { axis: 0 }),
        makeNode('Gemm', [u, p('v_rows'), p('stale')], [p('columns')], { transB: 1, alpha: floatAttribute('alpha', -1), beta: floatAttribute('beta', 1) }),
      );
    }
    nodes.push(
      makeNode('Gather', [p('columns'), p('removed')], [p('block')], { axis: 0 }),
      makeNode('Inverse', [p('block')], [p('inv')], {}, { domain: 'com.microsoft' }),
      makeNode('MatMul', [p('columns'), p('inv')], [p('scaled')]),
      makeNode('Mul', [p('columns'), p('scaled')], [p('products')]),
      makeNode('ReduceSum', [p('products'), 'one_axis'], [p('diag_drop')], { keepdims: 0 }),
      makeNode('Sub', [diag, p('diag_drop')], [p('diag')]),
      makeNode('Gather', [w, p('removed')], [p('w_rows')], { axis: 0 }),
      makeNode('Gemm', [p('scaled'), p('w_rows'), w], [p('w')], { alpha: floatAttribute('alpha', -1), beta: floatAttribute('beta', 1) }),
      makeNode('ScatterElements', [alive, p('removed'), 'zeros'], [p('alive')], { axis: 0 }),
    );
    if (s === 0) {
      u = p('columns');
      v = p('scaled');
    } else {
      nodes.push(makeNode('Concat', [u, p('columns')], [p('u')], { axis: 1 }), makeNode('Concat', [v, p('scaled')], [p('v')], { axis: 1 }));
      u = p('u');
      v = p('v');
    }
    diag = p('diag');
    w = p('w');
    alive = p('alive');
    removed.push(p('removed'));
  }
  initializers.push(makeTensor('one_axis', [1], BigInt64Array.from([1n])));
  nodes.push(
    makeNode('Concat', removed, ['removed'], { axis: 0 }),
    makeNode('Greater', [alive, 'half'], ['kept_mask']),
    makeNode('NonZero', ['kept_mask'], ['kept_2d']),
    makeNode('Reshape', ['kept_2d', 'flat_shape'], ['kept']),
    makeNode('Gather', [u, 'kept'], ['u_kept'], { axis: 0 }),
    makeNode('Gather', [v, 'kept'], ['v_kept'], { axis: 0 }),
    makeNode('Gather', [w, 'kept'], ['w_out'], { axis: 0 }),
  );
  return model(
    nodes,
    [['hinv', ['k', 'k']], ['w', ['k', 'd']], ['diagonal', ['k']], ['alive', ['k']]],
    [['removed', DataType.INT64], ['kept', DataType.INT64], ['u_kept', DataType.DOUBLE], ['v_kept', DataType.DOUBLE], ['w_out', DataType.DOUBLE]],
    initializers,
  );
}
