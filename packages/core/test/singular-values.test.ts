import { eigs, multiply, transpose } from 'mathjs';
import { Rng, singularValues, frobeniusNormSquared } from '@zerolm/core';
import type { Matrix } from '@zerolm/core';
import { singularValuesTuned } from '../src/linalg/singular-values';
import { orthogonalFromQr, withSpectrum } from './spectra';

/** max_j |computed_j - expected_j| / max(expected), expected sorted descending first. */
function worstError(computed: Float64Array, expected: readonly number[]): number {
  const sorted = [...expected].sort((a, b) => b - a);
  expect(computed.length).toBe(sorted.length);
  const largest = Math.max(sorted[0] ?? 0, Number.MIN_VALUE);
  let worst = 0;
  for (let j = 0; j < sorted.length; j++) worst = Math.max(worst, Math.abs(computed[j]! - sorted[j]!) / largest);
  return worst;
}

function randomSpectrum(rng: Rng, count: number): number[] {
  return Array.from({ length: count }, () => 0.1 + 3 * rng.uniform());
}

const cases: Array<[string, number, number, (rng: Rng, count: number) => number[]]> = [
    ['1 x n', 1, 7, randomSpectrum],
    ['m x 1', 9, 1, randomSpectrum],
    ['1 x 1', 1, 1, () => [2.5]],
    ['square', 48, 48, randomSpectrum],
    ['odd square (remainders of every block)', 37, 37, randomSpectrum],
    ['tall 4:1 (QR first)', 120, 30, randomSpectrum],
    ['tall 4:1, several QR panels and a partial one', 300, 70, randomSpectrum],
    ['wide 1:4 (transposed, then QR first)', 30, 120, randomSpectrum],
    ['moderately tall (no QR first)', 50, 40, randomSpectrum],
    ['moderately wide', 29, 41, randomSpectrum],
    [
      'rank-deficient (rank 12 of 45)',
      60,
      45,
      (rng, count) => Array.from({ length: count }, (_, j) => (j < 12 ? 1 + rng.uniform() : 0)),
    ],
    [
      'spread 1e-8 .. 1e3',
      64,
      64,
      (_, count) => Array.from({ length: count }, (_, j) => Math.pow(10, -8 + (11 * j) / (count - 1))),
    ],
    [
      'clustered and repeated values',
      40,
      40,
      (_, count) => Array.from({ length: count }, (_, j) => (j < 20 ? 1 : 1 + 1e-9 * j)),
    ],
];

// Both kinds of product kernels: WebAssembly SIMD (the default) and the TypeScript fallback.
describe.each(['wasm-simd', 'typescript'] as const)('singularValues (%s kernels) on U diag(s) V^T with random orthogonal U, V', (kernels) => {
  it.each(cases)('%s: every value within 1e-10 * s_max', (_name, rows, cols, spectrum) => {
    const rng = new Rng(`svd ${rows}x${cols}`);
    const s = spectrum(rng, Math.min(rows, cols));
    const matrix = withSpectrum(rows, cols, s, rng);
    expect(worstError(singularValues(matrix, { kernels }), s)).toBeLessThan(1e-10);
  });

  it('gives the same values for every block width and for QR-first on or off', () => {
    const rng = new Rng('tunings');
    const s = randomSpectrum(rng, 33);
    const matrix = withSpectrum(70, 33, s, rng);
    for (const bandWidth of [1, 2, 3, 5, 8, 16, 40]) {
      for (const qrFirstRatio of [1, 100]) {
        for (const qrBlockWidth of [5, 8, 16]) {
          const values = singularValuesTuned(matrix, { bandWidth, qrBlockWidth, qrFirstRatio }, { kernels });
          expect(worstError(values, s)).toBeLessThan(1e-10);
        }
      }
    }
  });
});

describe('singularValues on special input', () => {

  it('returns exact zeros for the zero matrix, in every shape', () => {
    for (const [rows, cols] of [[20, 30], [30, 20], [1, 4], [1, 1]] as const) {
      expect(Array.from(singularValues({ rows, cols, data: new Float64Array(rows * cols) }))).toEqual(
        new Array(Math.min(rows, cols)).fill(0),
      );
    }
  });

  it('keeps accuracy for tiny and huge scales (no overflow or underflow)', () => {
    const rng = new Rng('scales');
    const s = randomSpectrum(rng, 12);
    const base = withSpectrum(15, 12, s, rng);
    for (const scale of [1e-200, 1e-300, 1e200, 1e300]) {
      const scaled = { rows: 15, cols: 12, data: base.data.map((x) => x * scale) };
      expect(worstError(singularValues(scaled), s.map((x) => x * scale))).toBeLessThan(1e-10);
    }
  });

  it('reads Float32 data as the float32 values it holds, computing in float64', () => {
    const rng = new Rng('float32');
    const matrix = withSpectrum(25, 18, randomSpectrum(rng, 18), rng);
    const single = Float32Array.from(matrix.data);
    const widened = Float64Array.from(single);
    const fromSingle = singularValues({ rows: 25, cols: 18, data: single });
    const fromWidened = singularValues({ rows: 25, cols: 18, data: widened });
    expect(worstError(fromSingle, Array.from(fromWidened))).toBeLessThan(1e-13);
  });

  it('agrees with mathjs: square roots of the eigenvalues of A^T A (independent oracle)', () => {
    // mathjs has no SVD; eigs of the symmetric A^T A is an independent computation, accurate
    // enough to compare against when A is small and well conditioned.
    const rng = new Rng('mathjs');
    const rows = 9;
    const cols = 6;
    const entries = Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
    const gram = multiply(transpose(entries), entries) as number[][];
    const eigenvalues = eigs(gram).values as number[];
    const expected = eigenvalues.map((lambda) => Math.sqrt(Math.max(lambda, 0)));
    const computed = singularValues({ rows, cols, data: Float64Array.from(entries.flat()) });
    expect(worstError(computed, expected)).toBeLessThan(1e-10);
  });

  it('has squared singular values summing to the squared Frobenius norm', () => {
    const rng = new Rng('frobenius');
    const data = Float64Array.from({ length: 31 * 23 }, () => rng.normal());
    const matrix: Matrix = { rows: 31, cols: 23, data };
    const values = singularValues(matrix);
    const sumOfSquares = values.reduce((sum, x) => sum + x * x, 0);
    expect(sumOfSquares).toBeCloseTo(frobeniusNormSquared(matrix), 9);
  });
});

describe('orthogonalFromQr (the test oracle itself)', () => {
  it('is orthogonal to rounding', () => {
    const n = 17;
    const q = orthogonalFromQr(n, new Rng('q'));
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let k = 0; k < n; k++) dot += q[k * n + i]! * q[k * n + j]!;
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-13);
      }
    }
  });
});

describe('singularValues on degenerate input', () => {
  it('returns no values when a dimension is 0', () => {
    expect(singularValues({ rows: 0, cols: 5, data: new Float64Array(0) })).toHaveLength(0);
    expect(singularValues({ rows: 5, cols: 0, data: new Float64Array(0) })).toHaveLength(0);
    expect(singularValues({ rows: 0, cols: 0, data: new Float32Array(0) })).toHaveLength(0);
  });

  it.each([
    ['NaN', NaN],
    ['+Infinity', Infinity],
    ['-Infinity', -Infinity],
  ])('throws a clear error on %s, naming its position', (_name, bad) => {
    const data = new Float64Array(12).fill(1);
    data[7] = bad;
    expect(() => singularValues({ rows: 3, cols: 4, data })).toThrow(/non-finite entry .* row 1, column 3/);
  });

  it('throws when data does not hold rows x cols values', () => {
    expect(() => singularValues({ rows: 3, cols: 4, data: new Float64Array(11) })).toThrow(/needs 12 values, got 11/);
    expect(() => singularValues({ rows: -1, cols: 4, data: new Float64Array(0) })).toThrow(/non-negative integers/);
  });
});
