import type { Matrix } from '../module-graph';

/**
 * ||W||_F^2 = sum of squared entries = sum of squared singular values, in float64 with four
 * interleaved partial sums (faster, and a little more accurate than one running sum).
 * Throws when `data` does not hold rows x cols values.
 */
export function frobeniusNormSquared(matrix: Matrix): number {
  const { rows, cols, data } = matrix;
  if (data.length !== rows * cols) {
    throw new Error(`frobeniusNormSquared: a ${rows} x ${cols} matrix needs ${rows * cols} values, got ${data.length}`);
  }
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const full = data.length - (data.length % 4);
  for (let i = 0; i < full; i += 4) {
    const a = data[i];
    const b = data[i + 1];
    const c = data[i + 2];
    const d = data[i + 3];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (let i = full; i < data.length; i++) s0 += data[i] * data[i];
  return s0 + s1 + s2 + s3;
}
