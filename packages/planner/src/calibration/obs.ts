/**
 * Structured Optimal Brain Surgeon (OBS) on the matrix that reads a layer's units, under the
 * second moment of its inputs: which units can the refitted matrix do without?
 *
 * For inputs h (n features, second moment C = E[h h^T]) read by W (`n x d`, y = h W), removing a
 * set D of input rows and refitting the kept rows by least squares, W_K <- W_K + C_KK^-1 C_KD W_D,
 * raises the output error E||h W - h_K W'_K||^2 by tr(W_D^T ([H^-1]_DD)^-1 W_D), with H = C (plus
 * a ridge). Greedy OBS removes the unit whose cost is smallest, applies that refit to W and the
 * matching rank downdate to H^-1 (the inverse of H restricted to the units left), and repeats:
 *
 *   W    <- W    - H^-1[:, D] ([H^-1]_DD)^-1 W_D
 *   H^-1 <- H^-1 - H^-1[:, D] ([H^-1]_DD)^-1 H^-1[D, :]
 *
 * The removal order, reversed, ranks the units (the last removed is the most important), so the
 * kept sets of every size are nested. Work: O(n^3) for the inverse and the downdates together.
 */
import { subtractMatrixProduct } from '@zerolm/core';
import { ORT_MIN_SIZE, type OrtAlgebra } from './algebra';
import { cholesky, forwardSubstitute, inverseSpd, meanDiagonal, solveSpd } from './dense';

const EMPTY = new Float64Array(0);

/** Ridge added to C before it is inverted: this fraction of its mean diagonal (1 when C is zero). */
export const RIDGE = 1e-3;

/** The ridge added to the diagonal of C: `ridge` times its mean diagonal (1 when C is zero). */
export function ridgeShift(second: Float64Array, n: number, ridge = RIDGE): number {
  const mean = meanDiagonal(second, n);
  return mean > 0 ? ridge * mean : 1;
}

/** C + ridge * tr(C) / n * I, as a new array. */
export function regularized(second: Float64Array, n: number, ridge = RIDGE): Float64Array {
  const out = Float64Array.from(second);
  const lambda = ridgeShift(second, n, ridge);
  for (let i = 0; i < n; i++) out[i * n + i] += lambda;
  return out;
}

export interface ObsProblem {
  /** Second moment of the inputs (`n x n`), centred where the module has an output bias. */
  second: Float64Array;
  n: number;
  /** The matrix that reads the inputs (`n x d`, row-major, module-graph orientation). */
  weights: ArrayLike<number>;
  d: number;
  /** Rows owned by each unit (ascending within a unit; units disjoint, covering any subset of rows). */
  units: readonly (readonly number[])[];
  /** Units removed together per step (single-row units only; default 1, the exact greedy). */
  chunk?: number;
  ridge?: number;
}

/**
 * The greedy OBS removal order of the units: every unit index once, the first removed first; the
 * last one is the unit left when all others are gone. Within a chunk, units go cheapest first.
 */
export function obsRemovalOrder(problem: ObsProblem): number[] {
  const inverse = inverseSpd(regularized(problem.second, problem.n, problem.ridge), problem.n, 'the regularized second moment');
  return obsOrderFromInverse(inverse, problem);
}

/** Steps per onnxruntime run of the chunked OBS (see `OrtAlgebra.obsSteps`). */
const STEPS_PER_RUN = 16;

/**
 * `obsRemovalOrder` with the heavy algebra on onnxruntime (`OrtAlgebra`: CUDA when it starts,
 * else the CPU provider's GEMM), the same greedy: the inverse by block elimination, then
 * `obsOrderFromInverseOnOrt`. Needs single-row units covering every row in order (FFN neurons)
 * for the steps on onnxruntime; other problems go on in TypeScript.
 */
export async function obsRemovalOrderOnOrt(problem: ObsProblem, algebra: OrtAlgebra): Promise<number[]> {
  return obsOrderFromInverseOnOrt(await obsInverseOnOrt(problem.second, problem.n, algebra, problem.ridge), problem, algebra);
}

/** H^-1 = (C + ridge)^-1 of the second moment `second` (`n x n`, not modified), on onnxruntime. */
export function obsInverseOnOrt(second: Float64Array, n: number, algebra: OrtAlgebra, ridge?: number): Promise<Float64Array> {
  return algebra.inverseSpd(second, n, 'the regularized second moment', ridgeShift(second, n, ridge));
}

/**
 * The greedy removal order from `inverse` = H^-1 (consumed), the chunked steps on onnxruntime in
 * runs of `STEPS_PER_RUN` while more than `ORT_MIN_SIZE` units are left, the rest in TypeScript. Takes no
 * second moment: a caller that drops its own once it is inverted lets it be freed for the steps.
 */
export async function obsOrderFromInverseOnOrt(inverse: Float64Array, problem: Omit<ObsProblem, 'second'>, algebra: OrtAlgebra): Promise<number[]> {
  const { n, d, units } = problem;
  const chunk = Math.max(1, Math.floor(problem.chunk ?? 1));
  const rowsAreUnits = units.length === n && units.every((u, i) => u.length === 1 && u[0] === i);
  if (!rowsAreUnits) return obsOrderFromInverse(inverse, problem);
  // Each run returns new matrices: no name keeps the ones it replaces (the first inverse alone is
  // 254 MB for a 5632-wide FFN), so they can be freed while the next run works.
  let h = inverse;
  inverse = EMPTY;
  // Read, never written, by the runs.
  let w = problem.weights instanceof Float64Array ? problem.weights : Float64Array.from(problem.weights);
  /** Unit (= original row) at each compact position. */
  let rows = Array.from({ length: n }, (_, i) => i);
  const order: number[] = [];
  while (rows.length > ORT_MIN_SIZE && rows.length - 1 >= chunk) {
    const k = rows.length;
    const steps = Math.min(STEPS_PER_RUN, Math.floor((k - 1) / chunk));
    const result = await algebra.obsSteps(h, w, k, d, chunk, steps);
    for (const step of result.removed) order.push(...step.map((p) => rows[p]!));
    rows = result.kept.map((p) => rows[p]!);
    h = result.inverse;
    w = result.weights;
  }
  const rest = obsOrderFromInverse(h, { ...problem, n: rows.length, weights: w, units: rows.map((_, i) => [i]) });
  order.push(...rest.map((i) => rows[i]!));
  return order;
}

/** The greedy removal order from `inverse` = H^-1 (`problem.n` square; consumed). */
export function obsOrderFromInverse(inverse: Float64Array, problem: Omit<ObsProblem, 'second'>): number[] {
  const { n, d, units } = problem;
  const chunk = Math.max(1, Math.floor(problem.chunk ?? 1));
  if (chunk > 1 && units.some((u) => u.length !== 1)) throw new Error('internal: OBS chunks need single-row units');
  // Rows no unit owns stay in the problem (they are never removed but take part in the refit).
  let m = n;
  let h = inverse;
  let w = Float64Array.from(problem.weights);
  /** Original row index of each compact position. */
  let rows = Array.from({ length: n }, (_, i) => i);
  const positionOf = new Int32Array(n);
  const alive = units.map((_, u) => u);
  const order: number[] = [];
  const costs = new Float64Array(units.length);

  while (alive.length > 1) {
    rows.forEach((r, p) => (positionOf[r] = p));
    for (const u of alive) costs[u] = unitCost(h, m, w, d, units[u]!.map((r) => positionOf[r]!));
    const sorted = [...alive].sort((a, b) => costs[a]! - costs[b]! || a - b);
    const removed = sorted.slice(0, Math.min(chunk, alive.length - 1));
    order.push(...removed);
    const gone = new Set(removed);
    for (let i = alive.length - 1; i >= 0; i--) if (gone.has(alive[i]!)) alive.splice(i, 1);

    const drop = removed.flatMap((u) => units[u]!.map((r) => positionOf[r]!)).sort((a, b) => a - b);
    const dropSet = new Set(drop);
    const keep: number[] = [];
    for (let p = 0; p < m; p++) if (!dropSet.has(p)) keep.push(p);
    const r = drop.length;
    const k = keep.length;
    // H_RR, H_RK and W_R from the current matrices; then the downdated H_KK and W_K.
    const hrr = new Float64Array(r * r);
    const hrk = new Float64Array(r * k);
    const wr = new Float64Array(r * d);
    drop.forEach((p, i) => {
      const row = p * m;
      drop.forEach((q, j) => (hrr[i * r + j] = h[row + q]!));
      keep.forEach((q, j) => (hrk[i * k + j] = h[row + q]!));
      wr.set(w.subarray(p * d, (p + 1) * d), i * d);
    });
    const nextH = new Float64Array(k * k);
    const nextW = new Float64Array(k * d);
    keep.forEach((p, i) => {
      const row = p * m;
      for (let j = 0; j < k; j++) nextH[i * k + j] = h[row + keep[j]!]!;
      nextW.set(w.subarray(p * d, (p + 1) * d), i * d);
    });
    // With H_RR = L L^T and [A | V] = L^-1 [H_RK | W_R]: H_KK -= A^T A, W_K -= A^T V (one
    // triangular solve; A^T is given transposed, so P^T = A).
    cholesky(hrr, r, 'the OBS downdate block');
    const z = concatColumns(hrk, k, wr, d, r);
    forwardSubstitute(hrr, r, z, k + d);
    subtractMatrixProduct(nextH, 0, k, k, k, z, 0, k + d, r, z, 0, k + d);
    subtractMatrixProduct(nextW, 0, d, k, d, z, 0, k + d, r, z, k, k + d);
    h = nextH;
    w = nextW;
    m = k;
    rows = keep.map((p) => rows[p]!);
  }
  order.push(...alive);
  return order;
}

/** [A | B] for `a` (r x ka) and `b` (r x kb). */
function concatColumns(a: Float64Array, ka: number, b: Float64Array, kb: number, r: number): Float64Array {
  const out = new Float64Array(r * (ka + kb));
  for (let i = 0; i < r; i++) {
    out.set(a.subarray(i * ka, (i + 1) * ka), i * (ka + kb));
    out.set(b.subarray(i * kb, (i + 1) * kb), i * (ka + kb) + ka);
  }
  return out;
}

/** tr(W_B^T ([H^-1]_BB)^-1 W_B) for the compact positions `block`. */
function unitCost(h: Float64Array, m: number, w: Float64Array, d: number, block: readonly number[]): number {
  if (block.length === 1) {
    const p = block[0]!;
    let norm = 0;
    for (let c = p * d; c < (p + 1) * d; c++) norm += w[c]! * w[c]!;
    return norm / h[p * m + p]!;
  }
  const b = block.length;
  const hbb = new Float64Array(b * b);
  const wb = new Float64Array(b * d);
  block.forEach((p, i) => {
    block.forEach((q, j) => (hbb[i * b + j] = h[p * m + q]!));
    wb.set(w.subarray(p * d, (p + 1) * d), i * d);
  });
  // With [H^-1]_BB = L L^T, the cost is ||L^-1 W_B||_F^2: one triangular solve, not two.
  cholesky(hbb, b, 'an OBS unit block');
  forwardSubstitute(hbb, b, wb, d);
  let cost = 0;
  for (let i = 0; i < wb.length; i++) cost += wb[i]! * wb[i]!;
  return cost;
}

export interface RefitProblem {
  /** Second moment of the inputs (`n x n`), centred where the module has an output bias. */
  second: Float64Array;
  n: number;
  /** The matrix that reads the inputs (`n x d`). */
  weights: ArrayLike<number>;
  d: number;
  /** Kept rows, ascending. */
  kept: readonly number[];
  ridge?: number;
}

/**
 * The least-squares refit of the kept rows when the other rows are removed:
 * W_K + (C_KK + lambda I)^-1 C_KD W_D, lambda = ridge * tr(C_KK) / |K| (the minimiser of
 * E||h W - h_K W'||^2 with that ridge). Returns the `|K| x d` rows.
 */
export function refitRows(problem: RefitProblem): Float64Array {
  const { second, n, weights, d, kept } = problem;
  const k = kept.length;
  const keptSet = new Set(kept);
  const dropped: number[] = [];
  for (let i = 0; i < n; i++) if (!keptSet.has(i)) dropped.push(i);
  const out = new Float64Array(k * d);
  kept.forEach((r, i) => {
    for (let c = 0; c < d; c++) out[i * d + c] = weights[r * d + c]!;
  });
  if (dropped.length === 0 || k === 0) return out;
  const ckk = new Float64Array(k * k);
  // C_KD W_D, accumulated as -(C_KD) W_D through the product kernel: P^T = -C_DK.
  const negCdk = new Float64Array(dropped.length * k);
  const wd = new Float64Array(dropped.length * d);
  kept.forEach((r, i) => kept.forEach((c, j) => (ckk[i * k + j] = second[r * n + c]!)));
  dropped.forEach((r, i) => {
    kept.forEach((c, j) => (negCdk[i * k + j] = -second[r * n + c]!));
    for (let c = 0; c < d; c++) wd[i * d + c] = weights[r * d + c]!;
  });
  const rhs = new Float64Array(k * d);
  subtractMatrixProduct(rhs, 0, d, k, d, negCdk, 0, k, dropped.length, wd, 0, d);
  const delta = solveSpd(regularized(ckk, k, problem.ridge), k, rhs, d, 'the regularized second moment of the kept units');
  for (let i = 0; i < out.length; i++) out[i] += delta[i]!;
  return out;
}

/** `refitRows` with the solve on onnxruntime (an inverse by block elimination, then GEMMs) when more than `ORT_MIN_SIZE` rows are kept. */
export async function refitRowsOnOrt(problem: RefitProblem, algebra: OrtAlgebra): Promise<Float64Array> {
  const { second, n, weights, d, kept } = problem;
  const k = kept.length;
  if (k <= ORT_MIN_SIZE || k === n) return refitRows(problem);
  const keptSet = new Set(kept);
  const dropped: number[] = [];
  for (let i = 0; i < n; i++) if (!keptSet.has(i)) dropped.push(i);
  const ckk = new Float64Array(k * k);
  const ckd = new Float64Array(k * dropped.length);
  const wd = new Float64Array(dropped.length * d);
  kept.forEach((r, i) => {
    kept.forEach((c, j) => (ckk[i * k + j] = second[r * n + c]!));
    dropped.forEach((c, j) => (ckd[i * dropped.length + j] = second[r * n + c]!));
  });
  dropped.forEach((r, i) => {
    for (let c = 0; c < d; c++) wd[i * d + c] = weights[r * d + c]!;
  });
  const inverse = await algebra.inverseSpd(ckk, k, 'the regularized second moment of the kept units', ridgeShift(ckk, k, problem.ridge));
  const rhs = await algebra.multiply(ckd, k, dropped.length, wd, d);
  const delta = await algebra.multiply(inverse, k, k, rhs, d);
  const out = new Float64Array(k * d);
  kept.forEach((r, i) => {
    for (let c = 0; c < d; c++) out[i * d + c] = weights[r * d + c]! + delta[i * d + c]!;
  });
  return out;
}

/**
 * The output bias that keeps the module's mean output when rows change: b + mu (W - W'), where
 * W' is the refitted matrix with the removed rows zero (`kept` rows hold `refitted`).
 */
export function absorbedBias(bias: ArrayLike<number>, mean: ArrayLike<number>, weights: ArrayLike<number>, d: number, kept: readonly number[], refitted: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(bias);
  const n = mean.length;
  for (let r = 0; r < n; r++) {
    const mu = mean[r]!;
    if (mu === 0) continue;
    for (let c = 0; c < d; c++) out[c] += mu * weights[r * d + c]!;
  }
  kept.forEach((r, i) => {
    const mu = mean[r]!;
    if (mu === 0) return;
    for (let c = 0; c < d; c++) out[c] -= mu * refitted[i * d + c]!;
  });
  return out;
}

/** C - mu mu^T, as a new array: the second moment about the mean. */
export function centred(second: Float64Array, mean: ArrayLike<number>): Float64Array {
  const n = mean.length;
  const out = Float64Array.from(second);
  for (let i = 0; i < n; i++) {
    const mi = mean[i]!;
    if (mi === 0) continue;
    for (let j = 0; j < n; j++) out[i * n + j] -= mi * mean[j]!;
  }
  return out;
}
