/**
 * The float64 algebra on onnxruntime (CPU provider here; CUDA where it starts) against the
 * TypeScript kernels: the block-elimination inverse, and the chunked OBS order it drives.
 */
import { Rng } from '@zerolm/core';
import { inverseSpd, obsRemovalOrder, obsRemovalOrderOnOrt, OrtAlgebra, ORT_MIN_SIZE, refitRows, refitRowsOnOrt } from '../src';

/** A second moment C = Z^T Z / N of `samples` correlated rows over `n` features (rank min(n, samples)). */
function secondMoment(seed: string, n: number, samples: number): Float64Array {
  const rng = new Rng(seed);
  const z = Float64Array.from({ length: samples * n }, () => rng.normal());
  // Correlate neighbouring features and give them different scales.
  for (let s = 0; s < samples; s++) for (let j = n - 1; j > 0; j--) z[s * n + j] = z[s * n + j]! * (1 + j / n) + 0.5 * z[s * n + j - 1]!;
  const c = new Float64Array(n * n);
  for (let s = 0; s < samples; s++) {
    const row = z.subarray(s * n, (s + 1) * n);
    for (let i = 0; i < n; i++) {
      const v = row[i]! / samples;
      for (let j = 0; j < n; j++) c[i * n + j] += v * row[j]!;
    }
  }
  return c;
}

/** The largest absolute difference, relative to the largest absolute entry of the reference. */
function maxRelativeError(ours: ArrayLike<number>, reference: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < ours.length; i++) {
    worst = Math.max(worst, Math.abs(ours[i]! - reference[i]!));
    scale = Math.max(scale, Math.abs(reference[i]!));
  }
  return worst / scale;
}

let algebra: OrtAlgebra;
beforeAll(async () => {
  algebra = await OrtAlgebra.open('cpu');
});
afterAll(() => algebra.release());

describe('OrtAlgebra', () => {
  it('inverts a symmetric positive definite matrix by block elimination like the TypeScript Cholesky inverse', async () => {
    const n = ORT_MIN_SIZE + 200;
    // Fewer samples than features, as in the calibration of wide FFNs: the ridge makes it definite.
    const c = secondMoment('algebra/inverse', n, 200);
    for (let i = 0; i < n; i++) c[i * n + i] += 1e-2;
    const ours = await algebra.inverseSpd(c, n);
    const reference = inverseSpd(c, n);
    expect(maxRelativeError(ours, reference)).toBeLessThan(1e-8);
    // The ridge given as a shift is added to the blocks, not to the input.
    const before = Float64Array.from(c);
    const shifted = Float64Array.from(c);
    for (let i = 0; i < n; i++) shifted[i * n + i] += 0.3;
    expect(maxRelativeError(await algebra.inverseSpd(c, n, 'c', 0.3), inverseSpd(shifted, n))).toBeLessThan(1e-8);
    expect(c).toEqual(before);
    const scale = reference.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(Math.abs(ours[5 * n + 700]! - ours[700 * n + 5]!)).toBeLessThan(1e-10 * scale);
  });

  it('multiplies', async () => {
    const rng = new Rng('algebra/product');
    const a = Float64Array.from({ length: 3 * 4 }, () => rng.normal());
    const b = Float64Array.from({ length: 4 * 2 }, () => rng.normal());
    const y = await algebra.multiply(a, 3, 4, b, 2);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[i * 4 + k]! * b[k * 2 + j]!;
      expect(y[i * 2 + j]).toBeCloseTo(s, 12);
    }
  });

  it('gives the same chunked OBS removal order as the TypeScript greedy', async () => {
    const n = ORT_MIN_SIZE + 300;
    const d = 24;
    const second = secondMoment('algebra/obs', n, 300);
    const rng = new Rng('algebra/obs/w');
    const weights = Float64Array.from({ length: n * d }, () => rng.normal());
    const problem = { second, n, weights, d, units: Array.from({ length: n }, (_, j) => [j]), chunk: 7 };
    const ours = await obsRemovalOrderOnOrt(problem, algebra);
    const reference = obsRemovalOrder(problem);
    expect([...ours].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    // Both float64; only near-ties could swap, and none do here.
    expect(ours).toEqual(reference);
  });

  it('refits the kept rows like the TypeScript solve when more than ORT_MIN_SIZE rows are kept', async () => {
    const n = ORT_MIN_SIZE + 150;
    const d = 5;
    const second = secondMoment('algebra/refit', n, 300);
    const rng = new Rng('algebra/refit/w');
    const weights = Float64Array.from({ length: n * d }, () => rng.normal());
    const kept = Array.from({ length: n }, (_, i) => i).filter((i) => i % 9 !== 4);
    expect(kept.length).toBeGreaterThan(ORT_MIN_SIZE);
    const ours = await refitRowsOnOrt({ second, n, weights, d, kept }, algebra);
    const reference = refitRows({ second, n, weights, d, kept });
    expect(maxRelativeError(ours, reference)).toBeLessThan(1e-8);
  });
});
