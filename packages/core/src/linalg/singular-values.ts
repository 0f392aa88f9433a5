import type { Matrix } from '../module-graph';
import { reduceToUpperBand, reductionScratchLengths, triangularize } from './band-reduction';
import { bandToBidiagonal } from './band-to-bidiagonal';
import { bidiagonalSingularValues } from './bidiagonal-svd';
import { TYPESCRIPT_ARENA, type ProductArena } from './block-products';
import { openWasmArena, wasmSimdSupport } from './wasm/product-kernels';

/**
 * Which kernels run the products of the band reduction (nearly all the work): `wasm-simd`
 * (WebAssembly f64x2, see `wasm/product-kernels.ts`), `typescript` (scalar JavaScript, the
 * fallback), or `auto`: WebAssembly unless the runtime lacks SIMD or the environment variable
 * `ZEROLM_NO_WASM` is `1`.
 */
export type ProductKernels = 'auto' | 'wasm-simd' | 'typescript';

/** Per-call options of `singularValues`. */
export interface SingularValueOptions {
  /** Default `auto`. Asking for `wasm-simd` where it cannot run throws an Error that says why. */
  readonly kernels?: ProductKernels;
}

/**
 * The kernels that `auto` picks in this process: `wasm-simd` where WebAssembly SIMD works and
 * `ZEROLM_NO_WASM=1` is not set, else `typescript` (with the reason).
 */
export function defaultProductKernels(): { readonly kernels: 'wasm-simd' | 'typescript'; readonly reason?: string } {
  const support = wasmSimdSupport();
  if (!support.available) return { kernels: 'typescript', reason: support.reason };
  const env = typeof process === 'undefined' ? undefined : process.env['ZEROLM_NO_WASM'];
  if (env === '1') return { kernels: 'typescript', reason: 'ZEROLM_NO_WASM=1 is set' };
  return { kernels: 'wasm-simd' };
}

/** `auto` resolved; throws on an unknown name and on `wasm-simd` where it cannot run. */
function resolveKernels(kernels: ProductKernels | undefined): 'wasm-simd' | 'typescript' {
  switch (kernels ?? 'auto') {
    case 'auto':
      return defaultProductKernels().kernels;
    case 'typescript':
      return 'typescript';
    case 'wasm-simd': {
      const support = wasmSimdSupport();
      if (!support.available) throw new Error(`singularValues: kernels 'wasm-simd' cannot run here: ${support.reason}`);
      return 'wasm-simd';
    }
    default:
      throw new Error(`singularValues: kernels must be 'auto', 'wasm-simd' or 'typescript', got ${String(kernels)}`);
  }
}

/** Tuning knobs of `singularValues`; the defaults are what the benchmark chose. */
export interface SingularValueTuning {
  /**
   * Width of the reflector blocks of the band reduction, which is also the bandwidth that bulge
   * chasing starts from; omitted: `defaultBandWidth(min(rows, cols), kernels)`.
   */
  readonly bandWidth?: number;
  /** Width of the reflector blocks of the QR factorization of tall matrices. */
  readonly qrBlockWidth: number;
  /** A tall matrix (rows >= ratio * cols) is first reduced to its triangular QR factor. */
  readonly qrFirstRatio: number;
}

/**
 * Defaults for each kind of kernels. 5/3 is where QR first starts saving work (2mn^2 + 2n^3
 * against 4mn^2 - 4n^3/3 flops; with WebAssembly, QR first was slower at 1024 x 768 and faster
 * at 1536 x 768, as with TypeScript). QR blocks: of 8, 16 and 32 at 1024 x 256 and 3072 x 768, 16
 * was the fastest with the TypeScript kernels; of 4, 8, 12 and 16, 8 with WebAssembly (7-13%
 * faster than 16), whose faster products leave the panel factorization (work ~ width^2 per row)
 * a larger share.
 */
export const DEFAULT_SINGULAR_VALUE_TUNING: Readonly<Record<'wasm-simd' | 'typescript', SingularValueTuning>> = {
  typescript: { qrBlockWidth: 16, qrFirstRatio: 5 / 3 },
  'wasm-simd': { qrBlockWidth: 8, qrFirstRatio: 5 / 3 },
};

/** With the WebAssembly kernels, n below this gets bandwidth 4 (see `defaultBandWidth`). */
const WASM_NARROW_BELOW = 1536;

/**
 * Bandwidth for an n-column reduction, chosen by timing `singularValuesTuned` at widths 4 to 24:
 * bulge chasing costs about 6 w n^2, so small matrices want a narrow band, while the band
 * reduction's products need wider blocks to run well on large ones. TypeScript kernels: 4 was
 * the faster at n = 256, the two were even at 512, 8 was the faster at 1024. WebAssembly
 * kernels run the products fast enough that 4 stays the faster up to 1280 (by 7-17% at 512 to
 * 1280); 8 was slightly the faster at 1536 and 2048.
 */
export function defaultBandWidth(n: number, kernels: 'wasm-simd' | 'typescript'): number {
  return n < (kernels === 'wasm-simd' ? WASM_NARROW_BELOW : 384) ? 4 : 8;
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
 * with implicit-shift bidiagonal QR. The products run as WebAssembly SIMD where the runtime
 * supports it, else as TypeScript (`options.kernels`, `ZEROLM_NO_WASM=1`); the two differ only in
 * rounding (their default block widths differ; with equal ones they agree bit for bit).
 *
 * A matrix with a zero dimension has no singular values (empty result). Throws on NaN or
 * infinite entries and on a `data` length that does not match `rows x cols`.
 */
export function singularValues(matrix: Matrix, options: SingularValueOptions = {}): Float64Array {
  const kernels = resolveKernels(options.kernels);
  return singularValuesTuned(matrix, DEFAULT_SINGULAR_VALUE_TUNING[kernels], { kernels });
}

/**
 * `singularValues` with explicit tuning (for tests and the benchmark). With the same tuning, the
 * two kinds of kernels give bit-identical results.
 */
export function singularValuesTuned(matrix: Matrix, tuning: SingularValueTuning, options: SingularValueOptions = {}): Float64Array {
  const { rows, cols, data } = matrix;
  checkShape(matrix);
  const kernels = resolveKernels(options.kernels);
  const bandWidth = tuning.bandWidth ?? defaultBandWidth(Math.min(rows, cols), kernels);
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
  const width = Math.min(bandWidth, n);
  const qrFirst = m >= tuning.qrFirstRatio * n && m > n;
  const qrWidth = Math.min(tuning.qrBlockWidth, n);
  // The WebAssembly kernels only see their own memory, so the working copy and the scratch of
  // both reductions live there (where it cannot be had, e.g. over 2 GiB, plain arrays and the
  // TypeScript kernels do).
  const arena: ProductArena =
    (kernels === 'wasm-simd' &&
      n > 1 &&
      openWasmArena([
        m * n,
        ...(qrFirst ? reductionScratchLengths(m, n, qrWidth) : []),
        ...reductionScratchLengths(qrFirst ? n : m, n, width),
      ])) ||
    TYPESCRIPT_ARENA;
  const work = arena.take(m * n);
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
    let workRows = m;
    if (qrFirst) {
      triangularize(work, m, n, qrWidth, arena);
      workRows = n;
    }
    reduceToUpperBand(work, workRows, n, width, arena);
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
