import { initVariance } from '../init';
import { checkDimensions } from './marchenko-pastur';
import { sumOfSquaresMeasure } from './measure';

/**
 * `msv`, the mean squared singular value (the paper's per-matrix capacity, and the default):
 *
 *   C(W) = (1 / r) * sum_j s_j^2 = ||W||_F^2 / r,   r = min(rows, cols)
 *
 * computed from the entries, without an SVD. An empty matrix (r = 0) has capacity 0.
 *
 * Expected value for i.i.d. entries of variance sigma^2 (exact, any distribution):
 * E||W||_F^2 / r = rows * cols * sigma^2 / r.
 */
export const msvMeasure = sumOfSquaresMeasure({
  name: 'msv',
  description: 'mean squared singular value: ||W||_F^2 / min(rows, cols) = sum s_j^2 / min(rows, cols) (no SVD)',
  fromFiniteSumOfSquares(squares, rows, cols) {
    const r = Math.min(rows, cols);
    return r === 0 ? 0 : squares / r;
  },
  expected(rows, cols, init) {
    checkDimensions(rows, cols);
    const r = Math.min(rows, cols);
    return r === 0 ? 0 : (rows * cols * initVariance(init)) / r;
  },
});
