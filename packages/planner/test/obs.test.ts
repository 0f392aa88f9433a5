/**
 * The linear algebra of the importance rule and the correction, against direct computations
 * written here independently (naive Gaussian elimination on the sample-level least-squares
 * problem), on small random problems.
 */
import { Rng } from '@zerolm/core';
import { absorbedBias, centred, cholesky, inverseSpd, obsRemovalOrder, refitRows, RIDGE, solveSpd } from '../src';

/** Naive solve of A X = B by Gaussian elimination with partial pivoting (test reference). */
function gaussSolve(a: number[][], b: number[][]): number[][] {
  const n = a.length;
  const m = b[0]!.length;
  const A = a.map((r) => [...r]);
  const B = b.map((r) => [...r]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r]![c]!) > Math.abs(A[p]![c]!)) p = r;
    [A[c], A[p]] = [A[p]!, A[c]!];
    [B[c], B[p]] = [B[p]!, B[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r]![c]! / A[c]![c]!;
      for (let k = 0; k < n; k++) A[r]![k]! -= f * A[c]![k]!;
      for (let k = 0; k < m; k++) B[r]![k]! -= f * B[c]![k]!;
    }
  }
  return B.map((row, r) => row.map((v) => v / A[r]![r]!));
}

interface Problem {
  /** Samples x features. */
  h: number[][];
  /** Features x outputs. */
  w: number[][];
  second: Float64Array;
  n: number;
  d: number;
}

function randomProblem(seed: number, n: number, d: number, samples: number): Problem {
  const rng = new Rng(`obs-test/${seed}`);
  // Correlated features: h = z M with a random mixing M, plus a per-feature scale.
  const mix = Array.from({ length: n }, () => Array.from({ length: n }, () => rng.normal()));
  const h = Array.from({ length: samples }, () => {
    const z = Array.from({ length: n }, () => rng.normal());
    return Array.from({ length: n }, (_, j) => z.reduce((s, zk, k) => s + zk * mix[k]![j]!, 0) * (1 + j / n) + 0.3);
  });
  const w = Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
  const second = new Float64Array(n * n);
  for (const row of h) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) second[i * n + j] += (row[i]! * row[j]!) / samples;
  return { h, w, second, n, d };
}

/**
 * Error of keeping rows K with the best rows W'_K under the ridge the OBS uses (lambda on the
 * whole C): min over W' of E||h W - h_K W'||^2 + lambda ||W - W'||^2 (removed rows of W' zero),
 * solved from the normal equations directly.
 */
function directError(p: Problem, kept: number[], lambda: number): number {
  const { h, w, n, d } = p;
  const N = h.length;
  // Normal equations: (H_K^T H_K / N + lambda I) W' = H_K^T (H W) / N + lambda W_K.
  const target = h.map((row) => Array.from({ length: d }, (_, c) => row.reduce((s, x, i) => s + x * w[i]![c]!, 0)));
  const a = kept.map((i) => kept.map((j) => h.reduce((s, row) => s + row[i]! * row[j]!, 0) / N + (i === j ? lambda : 0)));
  const b = kept.map((i, r) => Array.from({ length: d }, (_, c) => h.reduce((s, row, k) => s + row[i]! * target[k]![c]!, 0) / N + lambda * w[kept[r]!]![c]!));
  const wk = gaussSolve(a, b);
  let error = 0;
  h.forEach((row, k) => {
    for (let c = 0; c < d; c++) {
      const approx = kept.reduce((s, i, r) => s + row[i]! * wk[r]![c]!, 0);
      error += (target[k]![c]! - approx) ** 2 / N;
    }
  });
  for (let i = 0; i < n; i++) {
    const r = kept.indexOf(i);
    for (let c = 0; c < d; c++) error += lambda * (w[i]![c]! - (r >= 0 ? wk[r]![c]! : 0)) ** 2;
  }
  return error;
}

function greedyDirect(p: Problem, units: number[][]): number[] {
  const trace = Array.from({ length: p.n }, (_, i) => p.second[i * p.n + i]!).reduce((s, v) => s + v, 0);
  const lambda = (RIDGE * trace) / p.n;
  const alive = units.map((_, u) => u);
  const order: number[] = [];
  while (alive.length > 1) {
    let best = -1;
    let bestError = Infinity;
    for (const u of alive) {
      const kept = alive.filter((x) => x !== u).flatMap((x) => units[x]!);
      const error = directError(p, kept.sort((x, y) => x - y), lambda);
      if (error < bestError) {
        bestError = error;
        best = u;
      }
    }
    order.push(best);
    alive.splice(alive.indexOf(best), 1);
  }
  return [...order, ...alive];
}

describe('dense linear algebra', () => {
  it.each([5, 70, 130])('Cholesky, solves and inverses of an SPD matrix of size %i agree with Gaussian elimination', (n) => {
    const p = randomProblem(n, n, 3, 2 * n + 10);
    const a = Float64Array.from(p.second);
    for (let i = 0; i < n; i++) a[i * n + i] += 0.1;
    const rows = Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * n, (i + 1) * n)));
    const b = Array.from({ length: n }, (_, i) => [i % 3, 1, -i / n]);
    const expected = gaussSolve(rows, b);
    const x = solveSpd(a, n, Float64Array.from(b.flat()), 3);
    expected.flat().forEach((v, i) => expect(x[i]).toBeCloseTo(v, 8));
    const inverse = inverseSpd(a, n);
    const identity = gaussSolve(rows, rows.map((_, i) => rows.map((__, j) => (i === j ? 1 : 0))));
    identity.flat().forEach((v, i) => expect(inverse[i]).toBeCloseTo(v, 8));
    const l = Float64Array.from(a);
    cholesky(l, n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(l[i * n + j]).toBe(0);
    const notPd = Float64Array.from(a);
    notPd[0] = -1;
    expect(() => cholesky(notPd, n, 'the test matrix')).toThrow(/the test matrix is not positive definite/);
  });
});

describe('structured OBS', () => {
  it('removes, at every step, the neuron whose removal the least-squares refit absorbs best (direct computation)', () => {
    const p = randomProblem(1, 8, 3, 40);
    const units = Array.from({ length: 8 }, (_, j) => [j]);
    const order = obsRemovalOrder({ second: p.second, n: 8, weights: p.w.flat(), d: 3, units });
    expect(order).toEqual(greedyDirect(p, units));
    expect([...order].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('does the same for blocks of rows (attention units)', () => {
    const p = randomProblem(2, 9, 4, 50);
    const units = [[0, 1, 2], [3, 4, 5], [6, 7, 8]];
    const order = obsRemovalOrder({ second: p.second, n: 9, weights: p.w.flat(), d: 4, units });
    expect(order).toEqual(greedyDirect(p, units));
  });

  it('removes several units per step in chunked mode, cheapest first, and ranks an all-zero unit first', () => {
    const p = randomProblem(3, 12, 3, 60);
    // Unit 4: a neuron that never fires and has no weights (a pruned-away unit).
    for (let i = 0; i < 12; i++) {
      p.second[4 * 12 + i] = 0;
      p.second[i * 12 + 4] = 0;
    }
    p.w[4] = [0, 0, 0];
    const units = Array.from({ length: 12 }, (_, j) => [j]);
    const exact = obsRemovalOrder({ second: p.second, n: 12, weights: p.w.flat(), d: 3, units });
    const chunked = obsRemovalOrder({ second: p.second, n: 12, weights: p.w.flat(), d: 3, units, chunk: 4 });
    expect(exact[0]).toBe(4);
    expect(chunked[0]).toBe(4);
    expect([...chunked].sort((a, b) => a - b)).toEqual(units.map((u) => u[0]));
    // The first chunk is the four cheapest units of the first step, the same first pick as exact.
    expect(chunked.slice(0, 1)).toEqual(exact.slice(0, 1));
  });
});

describe('least-squares refit', () => {
  it('solves the ridge least-squares problem of the kept rows (direct normal equations)', () => {
    const p = randomProblem(4, 7, 3, 30);
    const kept = [0, 2, 3, 6];
    const refitted = refitRows({ second: p.second, n: 7, weights: p.w.flat(), d: 3, kept });
    // lambda on C_KK, as refitRows uses: minimise E||h W - h_K W'||^2 + lambda ||W' - W_K||^2.
    const trace = kept.reduce((s, i) => s + p.second[i * 7 + i]!, 0);
    const lambda = (RIDGE * trace) / kept.length;
    const N = p.h.length;
    const target = p.h.map((row) => [0, 1, 2].map((c) => row.reduce((s, x, i) => s + x * p.w[i]![c]!, 0)));
    const a = kept.map((i) => kept.map((j) => p.h.reduce((s, row) => s + row[i]! * row[j]!, 0) / N + (i === j ? lambda : 0)));
    const b = kept.map((i) => [0, 1, 2].map((c) => p.h.reduce((s, row, k) => s + row[i]! * target[k]![c]!, 0) / N + lambda * p.w[i]![c]!));
    gaussSolve(a, b).flat().forEach((v, i) => expect(refitted[i]).toBeCloseTo(v, 8));
  });

  it('reduces E||h W - h_K W\'||^2 against plain slicing, and leaves a model that loses nothing unchanged', () => {
    const p = randomProblem(5, 10, 4, 80);
    const kept = [1, 2, 4, 5, 8, 9];
    const error = (rows: ArrayLike<number>) => {
      let sum = 0;
      for (const row of p.h) {
        for (let c = 0; c < 4; c++) {
          const full = row.reduce((s, x, i) => s + x * p.w[i]![c]!, 0);
          const approx = kept.reduce((s, i, r) => s + row[i]! * rows[r * 4 + c]!, 0);
          sum += (full - approx) ** 2;
        }
      }
      return sum / p.h.length;
    };
    const sliced = kept.flatMap((i) => p.w[i]!);
    const refitted = refitRows({ second: p.second, n: 10, weights: p.w.flat(), d: 4, kept });
    expect(error(refitted)).toBeLessThan(0.5 * error(sliced));
    const all = Array.from({ length: 10 }, (_, i) => i);
    expect(Array.from(refitRows({ second: p.second, n: 10, weights: p.w.flat(), d: 4, kept: all }))).toEqual(p.w.flat());
  });

  it('keeps the mean output with the bias update on centred moments', () => {
    const p = randomProblem(6, 6, 2, 50);
    const mean = new Float64Array(6);
    for (const row of p.h) row.forEach((x, i) => (mean[i] += x / p.h.length));
    const kept = [0, 3, 5];
    const refitted = refitRows({ second: centred(p.second, mean), n: 6, weights: p.w.flat(), d: 2, kept });
    const bias = absorbedBias([0.5, -1], mean, p.w.flat(), 2, kept, refitted);
    // Mean output of the full module = mean output of the corrected one.
    for (let c = 0; c < 2; c++) {
      const full = 0.5 * (c === 0 ? 1 : 0) - (c === 1 ? 1 : 0) + mean.reduce((s, m, i) => s + m * p.w[i]![c]!, 0);
      const corrected = bias[c]! + kept.reduce((s, i, r) => s + mean[i]! * refitted[r * 2 + c]!, 0);
      expect(corrected).toBeCloseTo(full, 10);
    }
  });
});
