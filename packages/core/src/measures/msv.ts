import { frobeniusNormSquared } from '../linalg/norms';
import type { Matrix, WeightInit } from '../module-graph';
import { initVariance } from '../init';
import { checkDimensions } from './marchenko-pastur';
import type { CapacityMeasure } from './measure';

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
export const msvMeasure: CapacityMeasure = {
  name: 'msv',
  description: 'mean squared singular value: ||W||_F^2 / min(rows, cols) = sum s_j^2 / min(rows, cols) (no SVD)',
  needsSpectrum: false,
  ofMatrix(matrix: Matrix): number {
    return msvMeasure.fromSumOfSquares!(frobeniusNormSquared(matrix), matrix.rows, matrix.cols);
  },
  fromSumOfSquares(squares: number, rows: number, cols: number): number {
    if (!Number.isFinite(squares)) {
      throw new Error(`msv: ||W||_F^2 of the ${rows} x ${cols} matrix is not finite (NaN or infinite entries, or entries too large to square)`);
    }
    const r = Math.min(rows, cols);
    return r === 0 ? 0 : squares / r;
  },
  expected(rows: number, cols: number, init: WeightInit): number {
    checkDimensions(rows, cols);
    const r = Math.min(rows, cols);
    return r === 0 ? 0 : (rows * cols * initVariance(init)) / r;
  },
};
