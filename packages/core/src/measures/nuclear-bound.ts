import { initVariance } from '../init';
import { checkDimensions } from './marchenko-pastur';
import { sumOfSquaresMeasure } from './measure';

/**
 * `nuclear-bound`, the nuclear norm of a flat spectrum with the matrix's energy:
 *
 *   C(W) = sqrt(r * sum s_j^2) = sqrt(r) * ||W||_F = r * sqrt(msv),   r = min(rows, cols)
 *
 * By Cauchy-Schwarz it bounds the nuclear norm sum s_j from above, with equality when all r
 * singular values are equal; it needs no SVD. Unlike `msv`, a mean over singular values that
 * rises when weak rows or columns are removed, it can only fall when any are (both r and
 * ||W||_F shrink), which is what the pruning planner needs of a capacity it maximises under a
 * budget: see packages/planner/README.md, "Scores".
 *
 * Expected value for i.i.d. entries of variance sigma^2: sqrt(r * rows * cols * sigma^2), the
 * square root of E[r ||W||_F^2]; by Jensen an upper bound on E[C], tight as the matrix grows
 * (||W||_F^2 concentrates: relative spread sqrt(2 / (rows * cols)) for Gaussian entries).
 */
export const nuclearBoundMeasure = sumOfSquaresMeasure({
  name: 'nuclear-bound',
  description: 'sqrt(min(rows, cols) * sum s_j^2) = min(rows, cols) * sqrt(msv): the nuclear norm of a flat spectrum with the same energy, an upper bound on the nuclear norm (no SVD)',
  fromFiniteSumOfSquares: (squares, rows, cols) => Math.sqrt(Math.min(rows, cols) * squares),
  expected(rows, cols, init) {
    checkDimensions(rows, cols);
    return Math.sqrt(Math.min(rows, cols) * rows * cols * initVariance(init));
  },
});
