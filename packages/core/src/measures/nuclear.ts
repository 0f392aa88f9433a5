import { singularValues } from '../linalg/singular-values';
import type { Matrix, WeightInit } from '../module-graph';
import { initVariance } from '../init';
import { marchenkoPasturSum } from './marchenko-pastur';
import type { CapacityMeasure } from './measure';

/**
 * `nuclear`, the nuclear (trace) norm:  C(W) = sum_j s_j.  0 for the zero or an empty matrix.
 *
 * Expected value for i.i.d. entries of variance sigma^2: r * E_MP[s] under the Marchenko-Pastur
 * law (see marchenko-pastur.ts), an approximation that becomes exact as min(rows, cols) grows.
 */
export const nuclearMeasure: CapacityMeasure = {
  name: 'nuclear',
  description: 'nuclear norm: sum_j s_j',
  needsSpectrum: true,
  ofMatrix(matrix: Matrix): number {
    let sum = 0;
    for (const s of singularValues(matrix)) sum += s;
    return sum;
  },
  expected(rows: number, cols: number, init: WeightInit): number {
    return marchenkoPasturSum(rows, cols, initVariance(init), (s) => s);
  },
};
