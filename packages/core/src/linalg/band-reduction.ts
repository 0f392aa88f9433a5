/**
 * Stage one of the singular value computation: orthogonal transformations that take a dense
 * matrix to an upper band, by blocks of Householder reflectors so that nearly all the work is
 * in the register-blocked products of `block-products.ts` (a "two-stage" reduction, as in
 * PLASMA/MAGMA: dense -> band here, band -> bidiagonal in `band-to-bidiagonal.ts`). Also the
 * blocked QR factorization that tall matrices go through first.
 *
 * Every routine works in place on a row-major `rows x cols` Float64Array with rows >= cols
 * (row stride = cols) and only uses orthogonal transformations, so singular values are kept.
 */

import {
  packColumnStrips,
  packRowStrips,
  subtractProduct,
  timesTransposed,
  transposeTimes,
  TYPESCRIPT_ARENA,
  type ProductArena,
  type TileKernels,
} from './block-products';
import { blockReflectorFactor, generateReflector } from './householder';
import { addScaled, dot } from './vectors';

function roundUpTo4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * Doubles of scratch that `reduceToUpperBand` or `triangularize` of a `rows x cols` matrix in
 * blocks of `width` takes from its arena, array by array (the fields of `PanelWorkspace`, in order).
 */
export function reductionScratchLengths(rows: number, cols: number, width: number): number[] {
  const padded = roundUpTo4(width);
  return [padded * rows, width * cols, width, width * width, width * width, padded * cols, padded * rows, width * cols, padded * cols];
}

/** Scratch buffers shared by all panels of one reduction, sized for the largest panel. */
class PanelWorkspace {
  /** Column panel, transposed (one panel column per row), then its reflectors: paddedWidth x rows. */
  readonly vt: Float64Array;
  /** Row panel, then its reflectors: width x cols. */
  readonly y: Float64Array;
  readonly taus: Float64Array;
  readonly gram: Float64Array;
  readonly t: Float64Array;
  /** V^T A (paddedWidth x cols) for the left update. */
  readonly w: Float64Array;
  /** (A Y^T)^T (paddedWidth x rows) for the right update. */
  readonly zt: Float64Array;
  readonly packedStrips: Float64Array;
  readonly packedRows: Float64Array;
  /** The kernels for the full tiles of the products, which run on the arena's arrays. */
  readonly tiles: TileKernels;

  constructor(rows: number, cols: number, width: number, arena: ProductArena) {
    const [vt, y, taus, gram, t, w, zt, packedStrips, packedRows] = reductionScratchLengths(rows, cols, width).map((n) => arena.take(n));
    this.vt = vt!;
    this.y = y!;
    this.taus = taus!;
    this.gram = gram!;
    this.t = t!;
    this.w = w!;
    this.zt = zt!;
    this.packedStrips = packedStrips!;
    this.packedRows = packedRows!;
    this.tiles = arena.tiles;
  }
}

/** rows r < count of M (row stride ld, `cols` long) <- rows of T^T M, T upper triangular count x count. */
function applyTransposedTriangular(t: Float64Array, count: number, m: Float64Array, ld: number, cols: number): void {
  // Row r of T^T M combines rows q <= r, so going bottom-up reads only rows not yet replaced.
  for (let r = count - 1; r >= 0; r--) {
    const row = r * ld;
    const diag = t[r * count + r];
    for (let c = 0; c < cols; c++) m[row + c] *= diag;
    for (let q = 0; q < r; q++) {
      const factor = t[q * count + r];
      if (factor === 0) continue;
      const src = q * ld;
      for (let c = 0; c < cols; c++) m[row + c] += factor * m[src + c];
    }
  }
}

/** gram[r][c] = (row r) . (row c) for r < c < count of the reflectors stored as rows of `v`, where row c is zero before position c. */
function reflectorGram(v: Float64Array, ld: number, length: number, count: number, gram: Float64Array): void {
  for (let r = 0; r < count; r++) {
    for (let c = r + 1; c < count; c++) gram[r * count + c] = dot(v, r * ld + c, v, c * ld + c, length - c);
  }
}

/**
 * Factors the column panel A[k.., k..k+width) (Householder QR), writes R back into A and
 * applies the panel's reflectors to the columns right of it, all rows from k down.
 */
function reduceColumnPanel(a: Float64Array, rows: number, cols: number, k: number, width: number, ws: PanelWorkspace): void {
  const lda = cols;
  const panelRows = rows - k;
  // The panel is factored transposed, so that each reflector and each column it updates are
  // contiguous, long rows of `vt`.
  const ldv = panelRows;
  const padded = roundUpTo4(width);
  const { vt, taus } = ws;
  for (let i = 0; i < panelRows; i++) {
    const src = (k + i) * lda + k;
    for (let j = 0; j < width; j++) vt[j * ldv + i] = a[src + j];
  }
  vt.fill(0, width * ldv, padded * ldv);
  for (let j = 0; j < width; j++) {
    const head = j * ldv + j;
    const tau = generateReflector(vt, head, panelRows - j, 1);
    taus[j] = tau;
    if (tau === 0) continue;
    // Column c -= tau * (v_j . column c) * v_j, with v_j = [1, vt[head + 1 ..]].
    const tail = panelRows - j - 1;
    for (let c = j + 1; c < width; c++) {
      const at = c * ldv + j;
      const scaled = tau * (vt[at] + dot(vt, head + 1, vt, at + 1, tail));
      vt[at] -= scaled;
      addScaled(-scaled, vt, head + 1, vt, at + 1, tail);
    }
  }
  for (let j = 0; j < width; j++) {
    const dst = (k + j) * lda + k;
    for (let c = j; c < width; c++) a[dst + c] = vt[c * ldv + j];
    vt.fill(0, j * ldv, j * ldv + j);
    vt[j * ldv + j] = 1;
  }
  const trailingCols = cols - k - width;
  if (trailingCols === 0) return;

  const { gram, t, w } = ws;
  reflectorGram(vt, ldv, panelRows, width, gram);
  blockReflectorFactor(gram, width, taus, width, t, width);

  // A2 <- (I - V T V^T)^T A2 = A2 - V (T^T (V^T A2)).
  const a2 = k * lda + k + width;
  transposeTimes(vt, ldv, padded, a, a2, lda, panelRows, trailingCols, w, ws.tiles);
  applyTransposedTriangular(t, width, w, trailingCols, trailingCols);
  packColumnStrips(w, trailingCols, width, trailingCols, ws.packedStrips);
  subtractProduct(a, a2, lda, panelRows, trailingCols, vt, ldv, width, w, trailingCols, ws.packedStrips, ws.tiles);
}

/**
 * Factors the row panel A[k..k+width, k+width..) from the right (Householder LQ), so each of
 * its rows ends at most `width` columns right of the diagonal, writes it back and applies the
 * reflectors to every row below the panel.
 */
function reduceRowPanel(a: Float64Array, rows: number, cols: number, k: number, width: number, ws: PanelWorkspace): void {
  const lda = cols;
  const c0 = k + width;
  const panelCols = cols - c0;
  const count = Math.min(width, panelCols);
  const { y, taus } = ws;
  const ldy = panelCols;
  for (let j = 0; j < width; j++) {
    const src = (k + j) * lda + c0;
    for (let c = 0; c < panelCols; c++) y[j * ldy + c] = a[src + c];
  }
  for (let j = 0; j < count; j++) {
    const head = j * ldy + j;
    const tau = generateReflector(y, head, panelCols - j, 1);
    taus[j] = tau;
    if (tau === 0) continue;
    const tail = panelCols - j - 1;
    for (let r = j + 1; r < width; r++) {
      const at = r * ldy + j;
      const scaled = tau * (y[at] + dot(y, head + 1, y, at + 1, tail));
      y[at] -= scaled;
      addScaled(-scaled, y, head + 1, y, at + 1, tail);
    }
  }
  for (let j = 0; j < width; j++) {
    const dst = (k + j) * lda + c0;
    const last = Math.min(j, panelCols - 1);
    for (let c = 0; c <= last; c++) a[dst + c] = y[j * ldy + c];
    if (j < count) {
      for (let c = 0; c < j; c++) y[j * ldy + c] = 0;
      y[j * ldy + j] = 1;
    }
  }
  const rowsBelow = rows - c0;
  if (rowsBelow === 0) return;

  const { gram, t, zt } = ws;
  reflectorGram(y, ldy, panelCols, count, gram);
  blockReflectorFactor(gram, count, taus, count, t, count);

  // A3 <- A3 (I - Y^T T Y) = A3 - (A3 Y^T T) Y, with Z = A3 Y^T T kept transposed: Z^T = T^T (A3 Y^T)^T.
  const padded = roundUpTo4(count);
  const a3 = c0 * lda + c0;
  packRowStrips(y, ldy, count, padded, panelCols, ws.packedRows);
  timesTransposed(a, a3, lda, rowsBelow, panelCols, ws.packedRows, padded, zt, ws.tiles);
  applyTransposedTriangular(t, count, zt, rowsBelow, rowsBelow);
  packColumnStrips(y, ldy, count, panelCols, ws.packedStrips);
  subtractProduct(a, a3, lda, rowsBelow, panelCols, zt, rowsBelow, count, y, ldy, ws.packedStrips, ws.tiles);
}

/**
 * Reduces the `rows x cols` matrix (rows >= cols) to upper band form with bandwidth `width`:
 * afterwards the singular values of `a` are those of the `cols x cols` matrix whose only
 * nonzeros are a[r][c] for r <= c <= r + width (the rest of `a` is scratch). With a WebAssembly
 * arena, `a` must be one of its arrays, since the products run on it in place.
 */
export function reduceToUpperBand(a: Float64Array, rows: number, cols: number, width: number, arena: ProductArena = TYPESCRIPT_ARENA): void {
  const ws = new PanelWorkspace(rows, cols, width, arena);
  for (let k = 0; k < cols; k += width) {
    const panel = Math.min(width, cols - k);
    reduceColumnPanel(a, rows, cols, k, panel, ws);
    if (k + panel < cols) reduceRowPanel(a, rows, cols, k, panel, ws);
  }
}

/**
 * Blocked Householder QR of the `rows x cols` matrix (rows >= cols), in place: afterwards the
 * first `cols` rows of `a` hold R (`cols x cols`, row stride cols, zeros below the diagonal)
 * and the rows below are scratch.
 */
export function triangularize(a: Float64Array, rows: number, cols: number, width: number, arena: ProductArena = TYPESCRIPT_ARENA): void {
  const ws = new PanelWorkspace(rows, cols, width, arena);
  for (let k = 0; k < cols; k += width) reduceColumnPanel(a, rows, cols, k, Math.min(width, cols - k), ws);
  for (let i = 1; i < cols; i++) a.fill(0, i * cols, i * cols + i);
}
