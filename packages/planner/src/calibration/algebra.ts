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
 * their `chunk x chunk` block; after `steps` steps the graph gathers the rows and columns left.
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

  private async run(key: string, build: () => Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const session = await this.session(key, build);
    try {
      return await session.run(feeds);
    } catch (error) {
      throw new Error(`onnxruntime (${this.provider}) failed on the calibration algebra (${key}): ${(error as Error).message.split('\n')[0]}`);
    }
  }

  /** A B for `a` (m x k) and `b` (k x n). */
  async multiply(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Promise<Float64Array> {
    const out = await this.run('product', productGraph, { a: f64(a, [m, k]), b: f64(b, [k, n]) });
    return tensorData(out['y'], 'product');
  }

  /** The inverse of the symmetric positive definite `a` (`n x n`, not modified; only its lower triangle and the blocks of the recursion are read), symmetric up to rounding. */
  async inverseSpd(a: Float64Array, n: number, what = 'matrix'): Promise<Float64Array> {
    if (n <= ORT_MIN_SIZE) return inverseSpd(a, n, what);
    // Halves on a multiple of 64 (the TypeScript kernels' block).
    const m = Math.max(64, Math.round(n / 2 / 64) * 64);
    const q = n - m;
    const top = block(a, n, 0, m, 0, m);
    const right = block(a, n, 0, m, m, n);
    const bottom = block(a, n, m, n, m, n);
    // The blocks hold all that is read of `a` from here: drop this frame's reference so that a
    // temporary argument (the regularized moment) can be freed during the recursion.
    a = EMPTY;
    const ai = await this.inverseSpd(top, m, what);
    const schur = await this.run('schur', schurGraph, { ai: f64(ai, [m, m]), b: f64(right, [m, q]), d: f64(bottom, [q, q]) });
    const t = tensorData(schur['t'], 't');
    // S and the blocks below are symmetric up to rounding; only their lower triangles are read by the TypeScript Cholesky.
    const si = await this.inverseSpd(tensorData(schur['s'], 's'), q, what);
    const assembled = await this.run('assemble', assembleGraph, { ai: f64(ai, [m, m]), t: f64(t, [m, q]), si: f64(si, [q, q]) });
    const topLeft = tensorData(assembled['tl'], 'tl');
    const topRight = tensorData(assembled['tr'], 'tr');
    const bottomLeft = tensorData(assembled['bl'], 'bl');
    const out = new Float64Array(n * n);
    for (let r = 0; r < m; r++) {
      out.set(topLeft.subarray(r * m, (r + 1) * m), r * n);
      out.set(topRight.subarray(r * q, (r + 1) * q), r * n + m);
    }
    for (let r = 0; r < q; r++) {
      out.set(bottomLeft.subarray(r * m, (r + 1) * m), (m + r) * n);
      out.set(si.subarray(r * q, (r + 1) * q), (m + r) * n + m);
    }
    return out;
  }

  /**
   * `steps` greedy OBS steps of `chunk` units of one row each on (`inverse` = H^-1, `k x k`;
   * `weights`, `k x d`): needs k > steps * chunk.
   */
  async obsSteps(inverse: Float64Array, weights: Float64Array, k: number, d: number, chunk: number, steps: number): Promise<ObsStepsResult> {
    if (!(k > steps * chunk)) throw new Error(`internal: ${steps} OBS steps of ${chunk} need more than ${steps * chunk} units (have ${k})`);
    const diagonal = new BigInt64Array(k);
    for (let i = 0; i < k; i++) diagonal[i] = BigInt(i * (k + 1));
    const out = await this.run(`obs/${chunk}/${steps}`, () => obsGraph(chunk, steps), {
      hinv: f64(inverse, [k, k]),
      w: f64(weights, [k, d]),
      diagonal: new ort.Tensor('int64', diagonal, [k]),
      alive: f64(new Float64Array(k).fill(1), [k]),
    });
    const removedAll = out['removed']!.data as BigInt64Array;
    const removed: number[][] = [];
    for (let s = 0; s < steps; s++) removed.push(Array.from(removedAll.subarray(s * chunk, (s + 1) * chunk), Number));
    const kept = Array.from(out['kept']!.data as BigInt64Array, Number);
    return { removed, kept, inverse: tensorData(out['hinv_out'], 'hinv_out'), weights: tensorData(out['w_out'], 'w_out') };
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
    inputs: inputs.map(([name, dims]) => makeValueInfo(name, name === 'diagonal' ? DataType.INT64 : DataType.DOUBLE, dims)),
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

/** U = T Si; top left Ai + U T^T, top right -U, bottom left its transpose. */
function assembleGraph(): Uint8Array {
  return model(
    [
      makeNode('MatMul', ['t', 'si'], ['u']),
      makeNode('Gemm', ['u', 't', 'ai'], ['tl'], { transB: 1, alpha: floatAttribute('alpha', 1), beta: floatAttribute('beta', 1) }),
      makeNode('Neg', ['u'], ['tr']),
      makeNode('Transpose', ['tr'], ['bl'], { perm: [1, 0] }),
    ],
    [['ai', ['m', 'm']], ['t', ['m', 'q']], ['si', ['q', 'q']]],
    [['tl', DataType.DOUBLE], ['tr', DataType.DOUBLE], ['bl', DataType.DOUBLE]],
  );
}

/**
 * `steps` unrolled OBS steps of `chunk` units. The downdates of H^-1 are applied lazily, as
 * SparseGPT batches its updates: step j reads the columns of its units from the run's input
 * corrected by the steps before it (H^-1[:, R] - U V[R, :]^T, with U and V the columns and
 * scaled columns of the steps so far), and the whole run's downdate H^-1 - U V^T is one GEMM at
 * the end; the diagonal and W are updated every step (the costs need them).
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
  nodes.push(makeNode('Reshape', ['hinv', 'flat_shape'], ['flat']), makeNode('Gather', ['flat', 'diagonal'], ['diag0'], { axis: 0 }));
  let diag = 'diag0';
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
    // Rows, then (H^-1 is symmetric) the rows of the transpose: contiguous gathers, not a strided one.
    makeNode('Gather', ['hinv', 'kept'], ['hinv_rows'], { axis: 0 }),
    makeNode('Transpose', ['hinv_rows'], ['hinv_rows_t'], { perm: [1, 0] }),
    makeNode('Gather', ['hinv_rows_t', 'kept'], ['hinv_kept'], { axis: 0 }),
    makeNode('Gather', [u, 'kept'], ['u_kept'], { axis: 0 }),
    makeNode('Gather', [v, 'kept'], ['v_kept'], { axis: 0 }),
    makeNode('Gemm', ['u_kept', 'v_kept', 'hinv_kept'], ['hinv_out'], { transB: 1, alpha: floatAttribute('alpha', -1), beta: floatAttribute('beta', 1) }),
    makeNode('Gather', [w, 'kept'], ['w_out'], { axis: 0 }),
  );
  return model(
    nodes,
    [['hinv', ['k', 'k']], ['w', ['k', 'd']], ['diagonal', ['k']], ['alive', ['k']]],
    [['removed', DataType.INT64], ['kept', DataType.INT64], ['hinv_out', DataType.DOUBLE], ['w_out', DataType.DOUBLE]],
    initializers,
  );
}
