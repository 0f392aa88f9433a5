import { singularValues } from '../linalg/singular-values';
import type { Matrix, WeightInit } from '../module-graph';
import { initVariance } from '../init';
import { marchenkoPasturSum } from './marchenko-pastur';
import type { CapacityMeasure } from './measure';

/**
 * `logdet`:  C(W) = sum_j log(1 + s_j^2) = log det(I + W^T W).  0 for the zero or an empty matrix.
 *
 * Expected value for i.i.d. entries of variance sigma^2: r * E_MP[log(1 + s^2)] under the
 * Marchenko-Pastur law (see marchenko-pastur.ts), an approximation that becomes exact as
 * min(rows, cols) grows.
 */
export const logdetMeasure: CapacityMeasure = {
  name: 'logdet',
  description: 'log-determinant: sum_j log(1 + s_j^2)',
  needsSpectrum: true,
  ofMatrix(matrix: Matrix): number {
    let sum = 0;
    for (const s of singularValues(matrix)) sum += Math.log1p(s * s);
    return sum;
  },
  expected(rows: number, cols: number, init: WeightInit): number {
    return marchenkoPasturSum(rows, cols, initVariance(init), (s) => Math.log1p(s * s));
  },
};
