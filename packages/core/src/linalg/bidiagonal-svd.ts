/**
 * Stage three of the singular value computation: the singular values of an upper bidiagonal
 * matrix by implicit-shift QR (Golub-Kahan, with the Demmel-Kahan zero-shift sweep when the
 * shift would be negligible; the structure of LAPACK's dbdsqr without singular vectors).
 *
 * Accuracy target: absolute, about machine epsilon times the largest singular value. An
 * off-diagonal entry is dropped when it is below eps * (largest entry) or below
 * eps * (|d_i| + |d_i+1|); each drop moves every singular value by at most that entry (Weyl), so
 * all drops together move none by more than n * eps * s_max.
 */

const EPS = Number.EPSILON;
// Between these, f^2 + g^2 is computed with full relative accuracy (no underflow, no overflow).
const SAFE_SQUARE_MIN = 1e-290;
const SAFE_SQUARE_MAX = 1e290;
/** dbdsqr's limit: at most 6 n^2 inner QR steps in total before giving up. */
const MAX_ITERATIONS_PER_N2 = 6;

// The plane rotation last computed by `rotate`: [c s; -s c] [f; g] = [r; 0].
let rotC = 1;
let rotS = 0;
let rotR = 0;

/** Plane rotation for (f, g) (LAPACK's dlartg), without overflow or underflow in the squares. */
function rotate(f: number, g: number): void {
  const squares = f * f + g * g;
  if (squares > SAFE_SQUARE_MIN && squares < SAFE_SQUARE_MAX) {
    const r = Math.sqrt(squares);
    const inverse = 1 / r;
    rotC = f * inverse;
    rotS = g * inverse;
    rotR = r;
  } else if (g === 0) {
    rotC = 1;
    rotS = 0;
    rotR = f;
  } else if (f === 0) {
    rotC = 0;
    rotS = 1;
    rotR = g;
  } else if (Math.abs(f) >= Math.abs(g)) {
    const t = g / f;
    const u = Math.sqrt(1 + t * t);
    rotC = 1 / u;
    rotS = t * rotC;
    rotR = f * u;
  } else {
    const t = f / g;
    const u = Math.sqrt(1 + t * t);
    rotS = 1 / u;
    rotC = t * rotS;
    rotR = g * u;
  }
}

// Singular values of the last 2 x 2 triangle handed to `twoByTwo`.
let pairMin = 0;
let pairMax = 0;

/** Singular values of [[f, g], [0, h]] (LAPACK's dlas2), accurate without overflow. */
function twoByTwo(f: number, g: number, h: number): void {
  const fa = Math.abs(f);
  const ga = Math.abs(g);
  const ha = Math.abs(h);
  const small = Math.min(fa, ha);
  const large = Math.max(fa, ha);
  if (small === 0) {
    pairMin = 0;
    if (large === 0) pairMax = ga;
    else {
      const big = Math.max(large, ga);
      const ratio = Math.min(large, ga) / big;
      pairMax = big * Math.sqrt(1 + ratio * ratio);
    }
  } else if (ga < large) {
    const as = 1 + small / large;
    const at = (large - small) / large;
    const au = (ga / large) * (ga / large);
    const c = 2 / (Math.sqrt(as * as + au) + Math.sqrt(at * at + au));
    pairMin = small * c;
    pairMax = large / c;
  } else {
    const au = large / ga;
    if (au === 0) {
      pairMin = (small * large) / ga;
      pairMax = ga;
    } else {
      const as = 1 + small / large;
      const at = (large - small) / large;
      const c = 1 / (Math.sqrt(1 + as * au * (as * au)) + Math.sqrt(1 + at * au * (at * au)));
      pairMin = 2 * (small * c) * au;
      pairMax = ga / (c + c);
    }
  }
}

/** One implicit QR sweep with shift `shift` over the block lo..hi, chasing top to bottom. */
function shiftedSweep(d: Float64Array, e: Float64Array, lo: number, hi: number, shift: number): void {
  const dLo = d[lo];
  let f = (Math.abs(dLo) - shift) * ((dLo >= 0 ? 1 : -1) + shift / dLo);
  let g = e[lo];
  for (let i = lo; i < hi; i++) {
    rotate(f, g);
    const cosR = rotC;
    const sinR = rotS;
    if (i > lo) e[i - 1] = rotR;
    f = cosR * d[i] + sinR * e[i];
    e[i] = cosR * e[i] - sinR * d[i];
    g = sinR * d[i + 1];
    d[i + 1] = cosR * d[i + 1];
    rotate(f, g);
    const cosL = rotC;
    const sinL = rotS;
    d[i] = rotR;
    f = cosL * e[i] + sinL * d[i + 1];
    d[i + 1] = cosL * d[i + 1] - sinL * e[i];
    if (i + 1 < hi) {
      g = sinL * e[i + 1];
      e[i + 1] = cosL * e[i + 1];
    }
  }
  e[hi - 1] = f;
}

/** One Demmel-Kahan zero-shift QR sweep over lo..hi: no subtraction, so tiny values keep their accuracy. */
function zeroShiftSweep(d: Float64Array, e: Float64Array, lo: number, hi: number): void {
  let cs = 1;
  let oldCs = 1;
  let oldSn = 0;
  for (let i = lo; i < hi; i++) {
    rotate(d[i] * cs, e[i]);
    cs = rotC;
    const sn = rotS;
    if (i > lo) e[i - 1] = oldSn * rotR;
    rotate(oldCs * rotR, d[i + 1] * sn);
    oldCs = rotC;
    oldSn = rotS;
    d[i] = rotR;
  }
  const h = d[hi] * cs;
  d[hi] = h * oldCs;
  e[hi - 1] = h * oldSn;
}

/**
 * With d[k] = 0 inside the block k..hi, rotations from the left push e[k] off the right end, so
 * row k decouples (the zero singular value then deflates on its own).
 */
function chaseZeroDiagonalRight(d: Float64Array, e: Float64Array, k: number, hi: number): void {
  let x = e[k];
  e[k] = 0;
  for (let j = k + 1; j <= hi && x !== 0; j++) {
    rotate(d[j], x);
    d[j] = rotR;
    if (j < hi) {
      x = -rotS * e[j];
      e[j] = rotC * e[j];
    }
  }
}

/** With d[hi] = 0, rotations from the right push e[hi - 1] off the top of the block lo..hi. */
function chaseZeroDiagonalUp(d: Float64Array, e: Float64Array, lo: number, hi: number): void {
  let x = e[hi - 1];
  e[hi - 1] = 0;
  for (let j = hi - 1; j >= lo && x !== 0; j--) {
    rotate(d[j], x);
    d[j] = rotR;
    if (j > lo) {
      x = -rotS * e[j - 1];
      e[j - 1] = rotC * e[j - 1];
    }
  }
}

/**
 * The singular values of the upper bidiagonal matrix with diagonal `d` (length n) and
 * superdiagonal `e` (length n - 1), in descending order. `d` and `e` are overwritten.
 * Throws when the QR iteration does not converge (non-finite input).
 */
export function bidiagonalSingularValues(d: Float64Array, e: Float64Array): Float64Array {
  const n = d.length;
  let largest = 0;
  for (let i = 0; i < n; i++) largest = Math.max(largest, Math.abs(d[i]));
  for (let i = 0; i + 1 < n; i++) largest = Math.max(largest, Math.abs(e[i]));
  if (!Number.isFinite(largest)) throw new Error('bidiagonal singular values: the matrix has a non-finite entry');
  const negligible = EPS * largest;
  for (let i = 0; i < n; i++) if (Math.abs(d[i]) <= negligible) d[i] = 0;

  const maxIterations = MAX_ITERATIONS_PER_N2 * n * n;
  let iterations = 0;
  let hi = n - 1;
  while (hi > 0) {
    // Find the bottom block lo..hi whose superdiagonal has no negligible entry.
    let lo = hi;
    while (lo > 0) {
      const off = Math.abs(e[lo - 1]);
      if (off <= negligible || off <= EPS * (Math.abs(d[lo - 1]) + Math.abs(d[lo]))) {
        e[lo - 1] = 0;
        break;
      }
      lo--;
    }
    if (lo === hi) {
      hi--;
      continue;
    }
    if (iterations > maxIterations) {
      throw new Error(`bidiagonal singular values: no convergence after ${iterations} QR steps (n = ${n})`);
    }
    if (lo + 1 === hi) {
      twoByTwo(d[lo], e[lo], d[hi]);
      d[lo] = pairMax;
      d[hi] = pairMin;
      e[lo] = 0;
      hi -= 2;
      continue;
    }
    let zeroAt = -1;
    for (let k = lo; k <= hi; k++) {
      if (d[k] === 0) {
        zeroAt = k;
        break;
      }
    }
    if (zeroAt >= 0) {
      if (zeroAt < hi) chaseZeroDiagonalRight(d, e, zeroAt, hi);
      else chaseZeroDiagonalUp(d, e, lo, hi);
      continue;
    }
    // Shift: the smaller singular value of the trailing 2 x 2, dropped when it is negligible
    // against the top of the block (then the zero-shift sweep keeps tiny values accurate).
    twoByTwo(d[hi - 1], e[hi - 1], d[hi]);
    let shift = pairMin;
    const ratio = shift / Math.abs(d[lo]);
    if (ratio * ratio < EPS) shift = 0;
    if (shift === 0) zeroShiftSweep(d, e, lo, hi);
    else shiftedSweep(d, e, lo, hi, shift);
    iterations += hi - lo;
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = Math.abs(d[i]);
  values.sort();
  values.reverse();
  return values;
}
