import type { WeightInit } from './module-graph';
import { Rng } from './random';

/**
 * Draws a `rows x cols` matrix (row-major) from `init`. The seed identifies the matrix, so the
 * same architecture gets the same weights on every run and machine.
 */
export function drawMatrix(init: WeightInit, rows: number, cols: number, seed: number | string): Float64Array {
  const out = new Float64Array(rows * cols);
  drawEach(init, out.length, seed, (i, value) => {
    out[i] = value;
  });
  return out;
}

/**
 * ||W||_F^2 of the matrix `drawMatrix` would draw with the same arguments, without allocating
 * it: the same stream, summed as it is drawn (scoring a benchmark draws billions of weights).
 */
export function drawnSumOfSquares(init: WeightInit, rows: number, cols: number, seed: number | string): number {
  let sum = 0;
  drawEach(init, rows * cols, seed, (_, value) => {
    sum += value * value;
  });
  return sum;
}

function drawEach(init: WeightInit, count: number, seed: number | string, visit: (i: number, value: number) => void): void {
  if (init.kind === 'zeros') {
    for (let i = 0; i < count; i++) visit(i, 0);
    return;
  }
  const rng = new Rng(seed);
  switch (init.kind) {
    case 'normal':
      for (let i = 0; i < count; i++) visit(i, init.std * rng.normal());
      break;
    case 'truncated-normal':
      // Rejection: redraw until inside [-bound, bound] (bound is in units of std).
      for (let i = 0; i < count; i++) {
        let z = rng.normal();
        while (Math.abs(z) > init.bound) z = rng.normal();
        visit(i, init.std * z);
      }
      break;
    case 'uniform':
      for (let i = 0; i < count; i++) visit(i, init.bound * (2 * rng.uniform() - 1));
      break;
  }
}

/** The variance of one entry drawn from `init`. */
export function initVariance(init: WeightInit): number {
  switch (init.kind) {
    case 'zeros':
      return 0;
    case 'normal':
      return init.std * init.std;
    case 'uniform':
      return (init.bound * init.bound) / 3;
    case 'truncated-normal': {
      // Var of a standard normal truncated to [-b, b]: 1 - 2 b phi(b) / (2 Phi(b) - 1).
      const b = init.bound;
      const phi = Math.exp(-0.5 * b * b) / Math.sqrt(2 * Math.PI);
      const mass = erf(b / Math.SQRT2);
      return init.std * init.std * (1 - (2 * b * phi) / mass);
    }
  }
}

/** The error function: Maclaurin series below 2.5, the erfc continued fraction above (error < 1e-13). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  let result: number;
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    result = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
    let f = ax;
    for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
    result = 1 - Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * f);
  }
  return x < 0 ? -result : result;
}
