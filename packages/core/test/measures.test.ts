import {
  BUILT_IN_MEASURES,
  Rng,
  drawMatrix,
  drawnSumOfSquares,
  getMeasure,
  initVariance,
  listMeasures,
  marchenkoPasturSum,
  registerBuiltInMeasures,
} from '@zerolm/core';
import type { CapacityMeasure, Matrix, WeightInit } from '@zerolm/core';
import { withSpectrum } from './spectra';

/** Each measure as a formula of the singular values, written independently of the measures' code. */
const FROM_SPECTRUM: Record<string, (s: readonly number[]) => number> = {
  msv: (s) => (s.length === 0 ? 0 : s.reduce((sum, x) => sum + x * x, 0) / s.length),
  nuclear: (s) => s.reduce((sum, x) => sum + x, 0),
  'nuclear-bound': (s) => Math.sqrt(s.length * s.reduce((sum, x) => sum + x * x, 0)),
  logdet: (s) => s.reduce((sum, x) => sum + Math.log(1 + x * x), 0),
  erank: (s) => {
    const total = s.reduce((sum, x) => sum + x, 0);
    if (total === 0) return 0;
    return Math.exp(-s.filter((x) => x > 0).reduce((h, x) => h + (x / total) * Math.log(x / total), 0));
  },
  srank: (s) => {
    const top = Math.max(0, ...s);
    return top === 0 ? 0 : s.reduce((sum, x) => sum + x * x, 0) / (top * top);
  },
};

const NAMES = ['msv', 'nuclear', 'nuclear-bound', 'logdet', 'erank', 'srank'];
/** The measures computed from ||W||_F^2 alone. */
const NO_SPECTRUM = ['msv', 'nuclear-bound'];

function diagonal(rows: number, cols: number, values: readonly number[]): Matrix {
  const data = new Float64Array(rows * cols);
  values.forEach((v, j) => (data[j * cols + j] = v));
  return { rows, cols, data };
}

describe('the measure registry', () => {
  it('holds the six built-in measures, msv first, each with a formula', () => {
    expect(BUILT_IN_MEASURES.map((m) => m.name)).toEqual(NAMES);
    const registered = listMeasures().map((m) => m.name);
    for (const name of NAMES) {
      expect(registered).toContain(name);
      expect(getMeasure(name).description.length).toBeGreaterThan(10);
    }
    for (const name of NAMES) expect(getMeasure(name).needsSpectrum).toBe(!NO_SPECTRUM.includes(name));
  });

  it('registering the built-ins again is harmless; unknown names are a clear error', () => {
    expect(() => registerBuiltInMeasures()).not.toThrow();
    expect(listMeasures().filter((m) => m.name === 'msv')).toHaveLength(1);
    expect(() => getMeasure('spectral-gap')).toThrow(/unknown capacity measure "spectral-gap" \(known: .*msv/);
  });
});

describe.each(NAMES)('measure %s on matrices with known spectra', (name) => {
  const measure: CapacityMeasure = getMeasure(name);
  const formula = FROM_SPECTRUM[name]!;

  it('diagonal matrices, tall and wide', () => {
    expect(measure.ofMatrix(diagonal(2, 2, [3, -4]))).toBeCloseTo(formula([4, 3]), 12);
    expect(measure.ofMatrix(diagonal(5, 3, [0.5, 2, 1]))).toBeCloseTo(formula([2, 1, 0.5]), 12);
    expect(measure.ofMatrix(diagonal(2, 6, [7, 0]))).toBeCloseTo(formula([7, 0]), 12);
  });

  it('U diag(s) V^T with random orthogonal U, V', () => {
    const rng = new Rng(`measure ${name}`);
    const s = [5, 3, 2.5, 1, 0.75, 0.5, 0.1, 0.01, 0, 0, 0, 0];
    const value = measure.ofMatrix(withSpectrum(20, 12, s, rng));
    expect(Math.abs(value - formula(s))).toBeLessThan(1e-10 * Math.max(1, Math.abs(formula(s))));
  });

  it('the zero matrix, a 1 x 1 matrix and an empty matrix', () => {
    expect(measure.ofMatrix({ rows: 4, cols: 6, data: new Float64Array(24) })).toBe(0);
    expect(measure.ofMatrix({ rows: 1, cols: 1, data: Float64Array.of(-3) })).toBeCloseTo(formula([3]), 12);
    expect(measure.ofMatrix({ rows: 0, cols: 6, data: new Float64Array(0) })).toBe(0);
  });

  it('rejects NaN entries with an error', () => {
    expect(() => measure.ofMatrix({ rows: 2, cols: 2, data: Float64Array.of(1, NaN, 0, 1) })).toThrow(/not finite|non-finite/);
  });
});

describe('closed forms of the measures', () => {
  it('erank and srank lie in [1, rank] and ignore scale; erank is the rank for equal singular values', () => {
    const rng = new Rng('ranges');
    const s = [4, 4, 4, 2, 1, 0, 0];
    const matrix = withSpectrum(9, 7, s, rng);
    const scaled = { ...matrix, data: matrix.data.map((x) => 1000 * x) };
    for (const name of ['erank', 'srank']) {
      const value = getMeasure(name).ofMatrix(matrix);
      expect(value).toBeGreaterThanOrEqual(1);
      expect(value).toBeLessThanOrEqual(5);
      expect(getMeasure(name).ofMatrix(scaled)).toBeCloseTo(value, 10);
    }
    expect(getMeasure('erank').ofMatrix(withSpectrum(6, 6, [2, 2, 2, 0, 0, 0], rng))).toBeCloseTo(3, 10);
  });

  it('nuclear-bound bounds the nuclear norm from above, equals it on a flat spectrum, and only falls as rows or columns go', () => {
    const rng = new Rng('nuclear-bound');
    const nuclear = getMeasure('nuclear');
    const bound = getMeasure('nuclear-bound');
    const msv = getMeasure('msv');
    const uneven = withSpectrum(12, 8, [6, 3, 2, 1, 0.5, 0.2, 0.1, 0], rng);
    expect(bound.ofMatrix(uneven)).toBeGreaterThan(nuclear.ofMatrix(uneven));
    expect(bound.ofMatrix(uneven)).toBeCloseTo(8 * Math.sqrt(msv.ofMatrix(uneven)), 10);
    const flat = withSpectrum(12, 8, [2, 2, 2, 2, 2, 2, 2, 2], rng);
    expect(bound.ofMatrix(flat)).toBeCloseTo(nuclear.ofMatrix(flat), 10);
    // Dropping the weakest columns one at a time: msv rises at some step, the bound never does.
    const data = drawMatrix({ kind: 'normal', std: 1 }, 10, 16, 'monotone');
    for (let c = 0; c < 16; c++) for (let r = 0; r < 10; r++) data[r * 16 + c]! *= 0.05 + c / 16;
    const strongest = (cols: number): Matrix => {
      const kept = new Float64Array(10 * cols);
      for (let r = 0; r < 10; r++) for (let c = 0; c < cols; c++) kept[r * cols + c] = data[r * 16 + 16 - cols + c]!;
      return { rows: 10, cols, data: kept };
    };
    let msvRose = false;
    for (let cols = 15; cols >= 1; cols--) {
      expect(bound.ofMatrix(strongest(cols))).toBeLessThanOrEqual(bound.ofMatrix(strongest(cols + 1)));
      msvRose ||= msv.ofMatrix(strongest(cols)) > msv.ofMatrix(strongest(cols + 1));
    }
    expect(msvRose).toBe(true);
  });
});

describe('expected values for i.i.d. initializations', () => {
  const init: WeightInit = { kind: 'normal', std: 0.02 };

  it('the Marchenko-Pastur density integrates to 1 and has mean sigma^2 (square and rectangular)', () => {
    for (const [rows, cols] of [[128, 128], [256, 64], [64, 256], [300, 7]] as const) {
      const count = Math.min(rows, cols);
      const variance = 0.3;
      expect(marchenkoPasturSum(rows, cols, variance, () => 1) / count).toBeCloseTo(1, 6);
      // E[s^2] = max(rows, cols) * E[lambda] = max(rows, cols) * sigma^2
      expect(marchenkoPasturSum(rows, cols, variance, (s) => s * s) / (rows * cols * variance)).toBeCloseTo(1, 6);
    }
  });

  it('msv expectation is exact: rows * cols * sigma^2 / min(rows, cols)', () => {
    expect(getMeasure('msv').expected!(256, 64, init)).toBeCloseTo((256 * 64 * 0.02 * 0.02) / 64, 15);
    expect(getMeasure('msv').expected!(64, 256, { kind: 'uniform', bound: 0.1 })).toBeCloseTo((256 * 0.01) / 3, 15);
  });

  it('every measure expects 0 from the zeros init and from an empty matrix', () => {
    for (const name of NAMES) {
      expect(getMeasure(name).expected!(64, 32, { kind: 'zeros' })).toBe(0);
      expect(getMeasure(name).expected!(0, 32, init)).toBe(0);
    }
  });

  it('rejects dimensions that are not non-negative integers', () => {
    for (const name of NAMES) expect(() => getMeasure(name).expected!(-1, 4, init)).toThrow(/non-negative integers/);
  });

  // Tolerances, from the spread of the sample mean plus the law's own error at these sizes:
  // - msv: exact expectation; ||W||_F^2 of one draw has relative sd sqrt(2 / (rows cols)) <= 1.3%,
  //   so the mean of 6 draws has sd <= 0.6%; 3% is 5 sd.
  // - nuclear, logdet, erank: Marchenko-Pastur is within 0.3% at r = 64..128 (checked against
  //   LAPACK on 8 draws) and these sums fluctuate by < 0.2% between draws: 1.5%.
  // - nuclear-bound: sqrt of msv's sum, so half its relative spread (<= 0.3% for 6 draws), and
  //   sqrt(E X) overstates E sqrt(X) by about var / 8 (< 0.01%): 2%.
  // - srank: its sd is about 2% per draw (s_max fluctuates on the Tracy-Widom scale), 0.8% for
  //   6 draws, and the Tracy-Widom-centred edge is within 1.5%: 4%.
  const tolerance: Record<string, number> = { msv: 0.03, 'nuclear-bound': 0.02, nuclear: 0.015, logdet: 0.015, erank: 0.015, srank: 0.04 };
  const draws = 6;

  it.each([
    [256, 64, { kind: 'normal', std: 0.05 }],
    [128, 128, { kind: 'normal', std: 1 }],
    [64, 200, { kind: 'truncated-normal', std: 0.5, bound: 2 }],
  ] as Array<[number, number, WeightInit]>)('%i x %i: the mean over Gaussian draws matches expected() (%j)', (rows, cols, drawInit) => {
    const sums = Object.fromEntries(NAMES.map((name) => [name, 0]));
    for (let k = 0; k < draws; k++) {
      const matrix = { rows, cols, data: drawMatrix(drawInit, rows, cols, `expected ${rows}x${cols} ${k}`) };
      for (const name of NAMES) sums[name]! += getMeasure(name).ofMatrix(matrix);
    }
    for (const name of NAMES) {
      const mean = sums[name]! / draws;
      const expected = getMeasure(name).expected!(rows, cols, drawInit);
      expect({ name, relativeError: Math.abs(mean / expected - 1) < tolerance[name]! ? 'ok' : mean / expected - 1 }).toEqual({
        name,
        relativeError: 'ok',
      });
    }
    expect(initVariance(drawInit)).toBeGreaterThan(0);
  });
});

describe('drawnSumOfSquares', () => {
  it.each([
    { kind: 'normal', std: 0.02 },
    { kind: 'truncated-normal', std: 1, bound: 2 },
    { kind: 'uniform', bound: 0.5 },
  ] as const)('equals the sum of squares of the matrix drawMatrix draws (%j)', (init) => {
    const values = drawMatrix(init, 37, 11, 'same-seed');
    let expected = 0;
    for (const v of values) expected += v * v;
    expect(drawnSumOfSquares(init, 37, 11, 'same-seed')).toBeCloseTo(expected, 12);
    expect(drawnSumOfSquares(init, 37, 11, 'other-seed')).not.toBeCloseTo(expected, 6);
  });
});
