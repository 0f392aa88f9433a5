import { frobeniusNormSquared } from '../linalg/norms';
import { singularValues } from '../linalg/singular-values';
import type { Matrix, WeightInit } from '../module-graph';
import { initVariance } from '../init';
import { checkDimensions } from './marchenko-pastur';
import type { CapacityMeasure } from './measure';

/** Mean of the Tracy-Widom law for real matrices (beta = 1). */
const TRACY_WIDOM_1_MEAN = -1.2065335745820;

/**
 * `srank`, the stable rank:  C(W) = ||W||_F^2 / s_max^2.  It lies in [1, rank(W)] and does not
 * change when W is scaled; 0 for the zero matrix and an empty one.
 *
 * Expected value for i.i.d. entries of variance sigma^2: E||W||_F^2 = rows * cols * sigma^2
 * over E[s_max^2]. To first order s_max ~ sigma (sqrt(rows) + sqrt(cols)), but at the sizes of
 * real layers that edge overestimates s_max^2 by 3-5% (256 x 64, 128 x 128), so we use the
 * Tracy-Widom centering of Johnstone (2001) with the half-integer correction of Ma (2012):
 * s_max^2 / sigma^2 ~ mu + tau * E[TW1], mu = (sqrt(m - 1/2) + sqrt(n - 1/2))^2,
 * tau = (sqrt(m - 1/2) + sqrt(n - 1/2)) (1 / sqrt(m - 1/2) + 1 / sqrt(n - 1/2))^(1/3),
 * which is within about 1.5% at those sizes and exact as min(rows, cols) grows. A vector
 * (min(rows, cols) = 1) has stable rank exactly 1. The result does not depend on sigma (0 for the
 * zeros init).
 */
export const srankMeasure: CapacityMeasure = {
  name: 'srank',
  description: 'stable rank: ||W||_F^2 / s_max^2 (0 for the zero matrix)',
  needsSpectrum: true,
  ofMatrix(matrix: Matrix): number {
    const values = singularValues(matrix);
    const largest = values.length > 0 ? values[0] : 0;
    if (largest === 0) return 0;
    return frobeniusNormSquared(matrix) / (largest * largest);
  },
  expected(rows: number, cols: number, init: WeightInit): number {
    checkDimensions(rows, cols);
    if (Math.min(rows, cols) === 0 || initVariance(init) === 0) return 0;
    if (Math.min(rows, cols) === 1) return 1;
    const a = Math.sqrt(rows - 0.5);
    const b = Math.sqrt(cols - 0.5);
    const center = (a + b) ** 2;
    const scale = (a + b) * Math.cbrt(1 / a + 1 / b);
    return (rows * cols) / (center + TRACY_WIDOM_1_MEAN * scale);
  },
};
