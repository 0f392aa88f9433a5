import { singularValues } from '../linalg/singular-values';
import type { Matrix, WeightInit } from '../module-graph';
import { initVariance } from '../init';
import { marchenkoPasturSum } from './marchenko-pastur';
import type { CapacityMeasure } from './measure';

/**
 * `erank`, the effective rank of Roy & Vetterli (2007):
 *
 *   C(W) = exp(H(p)),  H(p) = -sum_j p_j log p_j,  p_j = s_j / sum_k s_k   (0 log 0 = 0)
 *
 * It lies in [1, rank(W)] and does not change when W is scaled. The zero matrix (and an empty
 * one) has no distribution p; we define its effective rank as 0, which keeps the measure
 * monotone in the sense that matters for capacity: nothing below a matrix that does something.
 *
 * Expected value for i.i.d. entries: with S1 = sum s and T = sum s log s, H = log S1 - T / S1,
 * so erank = S1 * exp(-T / S1), with S1 and T from the Marchenko-Pastur law (see
 * marchenko-pastur.ts). An approximation that becomes exact as min(rows, cols) grows; it does not
 * depend on the variance (0 for the zeros init).
 */
export const erankMeasure: CapacityMeasure = {
  name: 'erank',
  description: 'effective rank: exp(-sum_j p_j log p_j), p_j = s_j / sum_k s_k (0 for the zero matrix)',
  needsSpectrum: true,
  ofMatrix(matrix: Matrix): number {
    const values = singularValues(matrix);
    let total = 0;
    for (const s of values) total += s;
    if (total === 0) return 0;
    let entropy = 0;
    for (const s of values) {
      if (s > 0) {
        const p = s / total;
        entropy -= p * Math.log(p);
      }
    }
    return Math.exp(entropy);
  },
  expected(rows: number, cols: number, init: WeightInit): number {
    const variance = initVariance(init);
    const sum = marchenkoPasturSum(rows, cols, variance, (s) => s);
    if (sum === 0) return 0;
    const sumSLogS = marchenkoPasturSum(rows, cols, variance, (s) => (s > 0 ? s * Math.log(s) : 0));
    return sum * Math.exp(-sumSLogS / sum);
  },
};
