/**
 * Test matrices with known singular values, built independently of the code under test:
 * U diag(s) V^T with U, V the orthogonal factors of Householder QR of Gaussian matrices
 * (written out plainly here, unblocked, sharing nothing with src/linalg).
 */
import { Rng } from '@zerolm/core';
import type { Matrix } from '@zerolm/core';

/** A random n x n orthogonal matrix (row-major): Q of the QR factorization of a Gaussian matrix. */
export function orthogonalFromQr(n: number, rng: Rng): Float64Array {
  const a = Float64Array.from({ length: n * n }, () => rng.normal());
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const v = new Float64Array(n);
  for (let j = 0; j + 1 < n; j++) {
    let norm = 0;
    for (let i = j; i < n; i++) norm += a[i * n + j]! * a[i * n + j]!;
    norm = Math.sqrt(norm);
    const alpha = a[j * n + j]!;
    const beta = alpha >= 0 ? -norm : norm;
    let vv = 0;
    for (let i = j; i < n; i++) {
      v[i] = i === j ? alpha - beta : a[i * n + j]!;
      vv += v[i]! * v[i]!;
    }
    if (vv === 0) continue;
    // A <- H A and Q <- Q H with H = I - 2 v v^T / (v^T v).
    for (let c = j; c < n; c++) {
      let s = 0;
      for (let i = j; i < n; i++) s += v[i]! * a[i * n + c]!;
      s *= 2 / vv;
      for (let i = j; i < n; i++) a[i * n + c]! -= s * v[i]!;
    }
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = j; i < n; i++) s += q[r * n + i]! * v[i]!;
      s *= 2 / vv;
      for (let i = j; i < n; i++) q[r * n + i]! -= s * v[i]!;
    }
  }
  return q;
}

/** A rows x cols matrix U diag(s) V^T with random orthogonal U, V; `s` has min(rows, cols) entries. */
export function withSpectrum(rows: number, cols: number, s: readonly number[], rng: Rng): Matrix {
  const count = Math.min(rows, cols);
  if (s.length !== count) throw new Error(`need ${count} singular values, got ${s.length}`);
  const u = orthogonalFromQr(rows, rng);
  const v = orthogonalFromQr(cols, rng);
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < cols; c++) {
      let sum = 0;
      for (let j = 0; j < count; j++) sum += u[i * rows + j]! * s[j]! * v[c * cols + j]!;
      data[i * cols + c] = sum;
    }
  }
  return { rows, cols, data };
}

/**
 * Singular values (descending) of the upper bidiagonal matrix (d, e) by bisection on the
 * Golub-Kahan form: the 2n x 2n symmetric tridiagonal matrix with zero diagonal and off-diagonal
 * d_0, e_0, d_1, e_1, .., d_{n-1} has eigenvalues +-s_j. Sturm counts give absolute accuracy of
 * a few eps * max|entry|, by a method that shares nothing with implicit QR.
 */
export function bidiagonalSingularValuesByBisection(d: readonly number[], e: readonly number[]): number[] {
  const n = d.length;
  const offDiagonal: number[] = [];
  for (let i = 0; i < n; i++) {
    offDiagonal.push(d[i]!);
    if (i + 1 < n) offDiagonal.push(e[i]!);
  }
  const size = 2 * n;
  const bound = 2 * Math.max(...offDiagonal.map(Math.abs), Number.MIN_VALUE);
  const tiny = Number.MIN_VALUE * 1e10;
  // Number of eigenvalues below x (Sylvester's law of inertia on the LDL^T factorization of T - x I).
  const countBelow = (x: number): number => {
    let count = 0;
    let q = -x;
    for (let k = 0; k < size; k++) {
      if (k > 0) q = -x - (offDiagonal[k - 1]! * offDiagonal[k - 1]!) / q;
      if (q === 0) q = -tiny;
      if (q < 0) count++;
    }
    return count;
  };
  const values: number[] = [];
  for (let k = 1; k <= n; k++) {
    let lo = 0;
    let hi = bound;
    for (let iteration = 0; iteration < 200 && hi - lo > 1e-17 * bound; iteration++) {
      const mid = (lo + hi) / 2;
      if (size - countBelow(mid) >= k) lo = mid;
      else hi = mid;
    }
    values.push((lo + hi) / 2);
  }
  return values;
}
