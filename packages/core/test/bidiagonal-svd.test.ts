import { Rng } from '@zerolm/core';
import { bidiagonalSingularValues } from '../src/linalg/bidiagonal-svd';
import { bidiagonalSingularValuesByBisection } from './spectra';

function check(d: number[], e: number[]): void {
  const expected = bidiagonalSingularValuesByBisection(d, e);
  const computed = bidiagonalSingularValues(Float64Array.from(d), Float64Array.from(e));
  const largest = Math.max(expected[0]!, Number.MIN_VALUE);
  expect(computed.length).toBe(d.length);
  for (let j = 0; j < d.length; j++) expect(Math.abs(computed[j]! - expected[j]!) / largest).toBeLessThan(1e-13);
}

describe('bidiagonalSingularValues (implicit-shift QR) against Sturm bisection', () => {
  const rng = new Rng('bidiagonal');
  const random = (n: number): number[] => Array.from({ length: n }, () => rng.normal());

  it('random bidiagonals of several sizes', () => {
    for (const n of [1, 2, 3, 5, 17, 60]) check(random(n), random(n - 1));
  });

  it('an exact zero on the diagonal: first, middle and last', () => {
    for (const at of [0, 3, 7]) {
      const d = random(8);
      d[at] = 0;
      check(d, random(7));
    }
  });

  it('graded diagonals, decreasing and increasing (negligible shifts, zero-shift sweeps)', () => {
    const n = 20;
    const e = random(n - 1).map((x) => x * 1e-3);
    check(Array.from({ length: n }, (_, i) => 10 ** -(i / 2)), e);
    check(Array.from({ length: n }, (_, i) => 10 ** (-(n - 1 - i) / 2)), e);
  });

  it('tiny and zero superdiagonal entries (splitting)', () => {
    const d = random(12);
    const e = random(11);
    e[2] = 0;
    e[5] = 1e-300;
    e[9] = 1e-17;
    check(d, e);
  });

  it('throws on non-finite input instead of iterating forever', () => {
    expect(() => bidiagonalSingularValues(Float64Array.of(1, NaN), Float64Array.of(1))).toThrow(/non-finite/);
  });
});
