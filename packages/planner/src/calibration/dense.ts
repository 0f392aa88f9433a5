/**
 * Dense float64 linear algebra for the calibration statistics: row-major matrices, a blocked
 * Cholesky factorization, and what the importance rule and the correction build on it (solves
 * and inverses of symmetric positive definite matrices).
 *
 * Almost all of the work of a blocked factorization or an OBS downdate is one product shape,
 * `C -= P Q` with P given transposed: `subtractMatrixProduct` of @zerolm/core, the tiled kernels of
 * its singular-value reduction (WebAssembly SIMD where it runs).
 */
import { subtractMatrixProduct } from '@zerolm/core';

/** Block size of the factorization and the triangular solves. */
const BLOCK = 64;

/**
 * The panel of the `n x n` matrix `a` below its diagonal block [b0, b1) (rows b1..n-1, columns
 * b0..b1-1), transposed: `(b1 - b0) x (n - b1)`, the P^T of the blocked updates below.
 */
function panelBelowTransposed(a: Float64Array, n: number, b0: number, b1: number): Float64Array {
  const rows = n - b1;
  const width = b1 - b0;
  const pt = new Float64Array(width * rows);
  for (let i = 0; i < rows; i++) for (let k = 0; k < width; k++) pt[k * rows + i] = a[(b1 + i) * n + b0 + k]!;
  return pt;
}

/** The transpose of the `rows x cols` matrix `a` (row-major). */
export function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const from = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[from + c]!;
  }
  return out;
}

/** A B for `a` (m x k) and `b` (k x n). */
export function multiply(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(m * n);
  const at = transpose(a, m, k);
  // out -= (-A) B
  for (let i = 0; i < at.length; i++) at[i] = -at[i]!;
  subtractMatrixProduct(out, 0, n, m, n, at, 0, m, k, b, 0, n);
  return out;
}

/**
 * Cholesky factorization A = L L^T of the symmetric positive definite `n x n` matrix `a`, in
 * place: the lower triangle becomes L, the strict upper triangle is zeroed. Throws when a pivot
 * is not positive (the matrix is not positive definite), naming `what`.
 */
export function cholesky(a: Float64Array, n: number, what = 'matrix'): void {
  const { sqrt } = Math;
  for (let j0 = 0; j0 < n; j0 += BLOCK) {
    const j1 = Math.min(n, j0 + BLOCK);
    // Diagonal block, unblocked (earlier blocks' updates are already applied).
    for (let j = j0; j < j1; j++) {
      const rowJ = j * n;
      let d = a[rowJ + j]!;
      for (let k = j0; k < j; k++) d -= a[rowJ + k]! * a[rowJ + k]!;
      if (!(d > 0)) throw new Error(`${what} is not positive definite (pivot ${j} of ${n} is ${d})`);
      const l = sqrt(d);
      a[rowJ + j] = l;
      for (let i = j + 1; i < j1; i++) {
        const rowI = i * n;
        let s = a[rowI + j]!;
        for (let k = j0; k < j; k++) s -= a[rowI + k]! * a[rowJ + k]!;
        a[rowI + j] = s / l;
      }
    }
    if (j1 === n) break;
    // Panel below the diagonal block: rows i >= j1 solve x L_jj^T = a_i.
    for (let i = j1; i < n; i++) {
      const rowI = i * n;
      for (let j = j0; j < j1; j++) {
        const rowJ = j * n;
        let s = a[rowI + j]!;
        for (let k = j0; k < j; k++) s -= a[rowI + k]! * a[rowJ + k]!;
        a[rowI + j] = s / a[rowJ + j]!;
      }
    }
    // Trailing lower triangle: A_22 -= P P^T with P = the panel, by block rows (tiles of the
    // lower part only).
    const width = j1 - j0;
    const rows = n - j1;
    const pt = panelBelowTransposed(a, n, j0, j1);
    for (let r0 = 0; r0 < rows; r0 += BLOCK) {
      const r1 = Math.min(rows, r0 + BLOCK);
      subtractMatrixProduct(a, (j1 + r0) * n + j1, n, r1 - r0, r1, pt, r0, rows, width, pt, 0, rows);
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
}

/** Solves L X = B in place (`b` is `n x m`), L lower triangular from `cholesky`. */
export function forwardSubstitute(l: Float64Array, n: number, b: Float64Array, m: number): void {
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    for (let i = i0; i < i1; i++) {
      const rowL = i * n;
      const rowB = i * m;
      for (let k = i0; k < i; k++) {
        const x = l[rowL + k]!;
        if (x === 0) continue;
        const from = k * m;
        for (let c = 0; c < m; c++) b[rowB + c] -= x * b[from + c]!;
      }
      const d = l[rowL + i]!;
      for (let c = 0; c < m; c++) b[rowB + c] /= d;
    }
    if (i1 === n) break;
    // Rows below: B_rest -= L[rest, i0:i1] X[i0:i1].
    const rows = n - i1;
    const width = i1 - i0;
    const pt = panelBelowTransposed(l, n, i0, i1);
    subtractMatrixProduct(b, i1 * m, m, rows, m, pt, 0, rows, width, b, i0 * m, m);
  }
}

/** Solves L^T X = B in place (`b` is `n x m`), L lower triangular from `cholesky`. */
export function backSubstitute(l: Float64Array, n: number, b: Float64Array, m: number): void {
  for (let i1 = n; i1 > 0; i1 -= BLOCK) {
    const i0 = Math.max(0, i1 - BLOCK);
    for (let i = i1 - 1; i >= i0; i--) {
      const rowB = i * m;
      for (let k = i + 1; k < i1; k++) {
        const x = l[k * n + i]!;
        if (x === 0) continue;
        const from = k * m;
        for (let c = 0; c < m; c++) b[rowB + c] -= x * b[from + c]!;
      }
      const d = l[i * n + i]!;
      for (let c = 0; c < m; c++) b[rowB + c] /= d;
    }
    if (i0 === 0) break;
    // Rows above: B[0:i0] -= (L^T)[0:i0, i0:i1] X[i0:i1]; (L^T)[r, k] = L[k, r], so P^T = L[i0:i1, 0:i0].
    subtractMatrixProduct(b, 0, m, i0, m, l, i0 * n, n, i1 - i0, b, i0 * m, m);
  }
}

/** X with A X = B for the symmetric positive definite `a` (`n x n`, not modified) and `b` (`n x m`). */
export function solveSpd(a: Float64Array, n: number, b: Float64Array, m: number, what = 'matrix'): Float64Array {
  const l = Float64Array.from(a);
  cholesky(l, n, what);
  const x = Float64Array.from(b);
  forwardSubstitute(l, n, x, m);
  backSubstitute(l, n, x, m);
  return x;
}

/** The inverse of the symmetric positive definite `a` (`n x n`, not modified), symmetric. */
export function inverseSpd(a: Float64Array, n: number, what = 'matrix'): Float64Array {
  const l = Float64Array.from(a);
  cholesky(l, n, what);
  const x = lowerInverse(l, n);
  // A^-1 = L^-T L^-1 = X^T X with X lower triangular: entry (i, j) sums X[k][i] X[k][j] over
  // k >= max(i, j). Lower-triangle blocks only, then mirrored.
  const out = new Float64Array(n * n);
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    // Block row I = [i0, i1), columns [0, i1): out -= (-X[k, I])^T X[k, 0:i1] over k >= i0.
    const depth = n - i0;
    const pt = new Float64Array(depth * (i1 - i0));
    for (let k = 0; k < depth; k++) for (let c = i0; c < i1; c++) pt[k * (i1 - i0) + c - i0] = -x[(i0 + k) * n + c]!;
    subtractMatrixProduct(out, i0 * n, n, i1 - i0, i1, pt, 0, i1 - i0, depth, x, i0 * n, n);
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out[i * n + j] = out[j * n + i]!;
  return out;
}

/** L^-1 of a lower triangular `l` (`n x n`), lower triangular, by blocked forward substitution on the identity. */
function lowerInverse(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) x[i * n + i] = 1;
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    // Rows of this block: only columns < i1 can be non-zero.
    for (let i = i0; i < i1; i++) {
      const rowL = i * n;
      const rowX = i * n;
      for (let k = i0; k < i; k++) {
        const f = l[rowL + k]!;
        if (f === 0) continue;
        const from = k * n;
        for (let c = 0; c <= k; c++) x[rowX + c] -= f * x[from + c]!;
      }
      const d = l[rowL + i]!;
      for (let c = 0; c <= i; c++) x[rowX + c] /= d;
    }
    if (i1 === n) break;
    const rows = n - i1;
    const width = i1 - i0;
    const pt = panelBelowTransposed(l, n, i0, i1);
    subtractMatrixProduct(x, i1 * n, n, rows, i1, pt, 0, rows, width, x, i0 * n, n);
  }
  return x;
}

/** tr(A) / n of an `n x n` matrix. */
export function meanDiagonal(a: Float64Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i * n + i]!;
  return n > 0 ? sum / n : 0;
}
