import type { Matrix } from '../module-graph';
import { reduceToUpperBand, triangularize } from './band-reduction';
import { bandToBidiagonal } from './band-to-bidiagonal';
import { bidiagonalSingularValues } from './bidiagonal-svd';

/** Tuning knobs of `singularValues`; the defaults are what the benchmark chose. */
export interface SingularValueTuning {
  /**
   * Width of the reflector blocks of the band reduction, which is also the bandwidth that bulge
   * chasing starts from; omitted: `defaultBandWidth(min(rows, cols))`.
   */
  readonly bandWidth?: number;
  /** Width of the reflector blocks of the QR factorization of tall matrices. */
  readonly qrBlockWidth: number;
  /** A tall matrix (rows >= ratio * cols) is first reduced to its triangular QR factor. */
  readonly qrFirstRatio: number;
}

/**
 * 5/3 is where QR first starts saving work (2mn^2 + 2n^3 against 4mn^2 - 4n^3/3 flops); QR
 * blocks of 16 were the fastest of 8, 16 and 32 at 1024 x 256 and 3072 x 768.
 */
export const DEFAULT_SINGULAR_VALUE_TUNING: SingularValueTuning = { qrBlockWidth: 16, qrFirstRatio: 5 / 3 };

/**
 * Bandwidth for an n-column reduction, chosen by timing `singularValuesTuned` at widths 4 to 24:
 * bulge chasing costs about 6 w n^2, so small matrices want a narrow band, while the band
 * reduction's products need wider blocks to run well on large ones (4 was the faster at
 * n = 256, the two were even at 512, 8 was the faster at 1024).
 */
export function defaultBandWidth(n: number): number {
  return n < 384 ? 4 : 8;
}

/**
 * All min(rows, cols) singular values of a real matrix, in descending order, computed in
 * float64 (Float32 input is widened first). Absolute accuracy: a few units of machine epsilon
 * times the largest singular value, times a small multiple of min(rows, cols).
 *
 * Method, for singular values only (no U, V): scale by a power of two so the largest entry is
 * about 1 (exact, and no square can overflow); work on the transpose of a wide matrix; reduce a
 * tall one (rows >= 5/3 cols) to its R factor by blocked Householder QR; take the square or
 * moderately tall matrix to an upper band (width 4 or 8) with blocks of Householder reflectors
 * applied through register-blocked products, then to bidiagonal form by bulge chasing; finish
 * with implicit-shift bidiagonal QR.
 *
 * A matrix with a zero dimension has no singular values (empty result). Throws on NaN or
 * infinite entries and on a `data` length that does not match `rows x cols`.
 */
export function singularValues(matrix: Matrix): Float64Array {
  return singularValuesTuned(matrix, DEFAULT_SINGULAR_VALUE_TUNING);
}

/** `singularValues` with explicit tuning (for tests and the benchmark). */
export function singularValuesTuned(matrix: Matrix, tuning: SingularValueTuning): Float64Array {
  const { rows, cols, data } = matrix;
  checkShape(matrix);
  const bandWidth = tuning.bandWidth ?? defaultBandWidth(Math.min(rows, cols));
  for (const [key, value] of [['bandWidth', bandWidth], ['qrBlockWidth', tuning.qrBlockWidth]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`singularValues: ${key} must be a positive integer, got ${value}`);
    }
  }
  const count = Math.min(rows, cols);
  if (count === 0) return new Float64Array(0);

  const largest = largestMagnitude(matrix);
  if (largest === 0) return new Float64Array(count);
  // Scaling by a power of two is exact; the clamp keeps 2^-exponent finite for subnormal input.
  const exponent = Math.max(Math.floor(Math.log2(largest)), -1000);
  const scale = Math.pow(2, -exponent);

  // Work on a tall-or-square copy: m >= n.
  const m = Math.max(rows, cols);
  const n = count;
  const work = new Float64Array(m * n);
  if (rows >= cols) {
    for (let i = 0; i < data.length; i++) work[i] = data[i] * scale;
  } else {
    transposeInto(data, rows, cols, scale, work);
  }

  let values: Float64Array;
  if (n === 1) {
    let squares = 0;
    for (let i = 0; i < m; i++) squares += work[i] * work[i];
    values = Float64Array.of(Math.sqrt(squares));
  } else {
    const width = Math.min(bandWidth, n);
    let workRows = m;
    if (m >= tuning.qrFirstRatio * n && m > n) {
      triangularize(work, m, n, Math.min(tuning.qrBlockWidth, n));
      workRows = n;
    }
    reduceToUpperBand(work, workRows, n, width);
    const d = new Float64Array(n);
    const e = new Float64Array(n - 1);
    bandToBidiagonal(work, n, n, width, d, e);
    values = bidiagonalSingularValues(d, e);
  }
  const unscale = Math.pow(2, exponent);
  for (let i = 0; i < values.length; i++) values[i] *= unscale;
  return values;
}

function checkShape(matrix: Matrix): void {
  const { rows, cols, data } = matrix;
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 0) {
    throw new Error(`singularValues: matrix dimensions must be non-negative integers, got ${rows} x ${cols}`);
  }
  if (data.length !== rows * cols) {
    throw new Error(`singularValues: a ${rows} x ${cols} matrix needs ${rows * cols} values, got ${data.length}`);
  }
}

/** max |a_ij|; throws naming the first entry that is NaN or infinite. */
function largestMagnitude(matrix: Matrix): number {
  const { data } = matrix;
  let largest = 0;
  let finite = true;
  for (let i = 0; i < data.length; i++) {
    const x = Math.abs(data[i]);
    if (x > largest) largest = x;
    else if (x !== x) finite = false;
  }
  if (finite && largest !== Infinity) return largest;
  const at = data.findIndex((x) => !Number.isFinite(x));
  const row = Math.floor(at / matrix.cols);
  throw new Error(
    `singularValues: the ${matrix.rows} x ${matrix.cols} matrix has a non-finite entry (${data[at]}) at row ${row}, column ${at - row * matrix.cols}`,
  );
}

/** out (cols x rows) = scale * transpose(data (rows x cols)), in tiles so both sides stay in cache. */
function transposeInto(data: ArrayLike<number>, rows: number, cols: number, scale: number, out: Float64Array): void {
  const tile = 32;
  for (let i0 = 0; i0 < rows; i0 += tile) {
    const i1 = Math.min(rows, i0 + tile);
    for (let j0 = 0; j0 < cols; j0 += tile) {
      const j1 = Math.min(cols, j0 + tile);
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) out[j * rows + i] = data[i * cols + j] * scale;
      }
    }
  }
}
