/**
 * Stage two of the singular value computation: an upper band matrix (bandwidth w) is taken to
 * upper bidiagonal form by bulge chasing with Householder reflectors of length <= w. Sweep i
 * annihilates row i right of its superdiagonal (a reflector from the right), then column i+1
 * below its diagonal (from the left); that left reflector spills into the w columns beyond the
 * band, so the spill's first row is annihilated by the next right reflector, and so on down the
 * matrix. Only each bulge's first row and column are removed; the rest of the fill stays inside
 * a fixed envelope (at most w - 1 below the diagonal, 2w - 1 above it) and is swept up by the
 * following sweeps, as in the band-reduction stage of PLASMA and MAGMA. Work: about 6 w n^2.
 *
 * The band lives in a compact row-major store, so every reflector touches short contiguous
 * row segments.
 */

import { generateReflector } from './householder';
import { addScaled, dot } from './vectors';

/**
 * Reads the `n x n` upper band of bandwidth `width` (a[r][c] for r <= c <= r + width, row
 * stride lda) and writes the diagonal to `d` (length n) and the superdiagonal to `e`
 * (length n - 1) of an upper bidiagonal matrix with the same singular values.
 */
export function bandToBidiagonal(a: Float64Array, lda: number, n: number, width: number, d: Float64Array, e: Float64Array): void {
  if (width <= 1 || n <= 2) {
    for (let i = 0; i < n; i++) d[i] = a[i * lda + i];
    for (let i = 0; i + 1 < n; i++) e[i] = a[i * lda + i + 1];
    return;
  }
  // Entry (r, c) of the envelope is band[r * ld + c - r + below]. The envelope needs offsets
  // c - r in [-(width - 1), 2 width - 1] (see the module comment); the store keeps one
  // spare slot below and `width` above, and those stay zero.
  const below = width;
  const ld = 4 * width;
  const band = new Float64Array(n * ld);
  for (let r = 0; r < n; r++) {
    const last = Math.min(r + width, n - 1);
    for (let c = r; c <= last; c++) band[r * ld + c - r + below] = a[r * lda + c];
  }
  const reflector = new Float64Array(width);
  const dots = new Float64Array(2 * width);
  const down = ld - 1;

  for (let i = 0; i + 2 < n; i++) {
    let row = i;
    let c0 = i + 1;
    let c1 = Math.min(i + width, n - 1);
    while (c1 > c0) {
      const length = c1 - c0 + 1;

      // Right reflector: row `row` keeps only its entry in column c0 of columns c0..c1.
      const head = row * ld + c0 - row + below;
      const tauRight = generateReflector(band, head, length, 1);
      if (tauRight !== 0) {
        reflector[0] = 1;
        for (let k = 1; k < length; k++) {
          reflector[k] = band[head + k];
          band[head + k] = 0;
        }
        for (let r = row + 1; r <= c1; r++) {
          const p = r * ld + c0 - r + below;
          addScaled(-tauRight * dot(band, p, reflector, 0, length), reflector, 0, band, p, length);
        }
      }

      // Left reflector: column c0 keeps only its diagonal entry of rows c0..c1.
      const diag = c0 * ld + below;
      const tauLeft = generateReflector(band, diag, length, down);
      if (tauLeft !== 0) {
        reflector[0] = 1;
        for (let k = 1; k < length; k++) {
          reflector[k] = band[diag + k * down];
          band[diag + k * down] = 0;
        }
        const lastCol = Math.min(c1 + width, n - 1);
        const span = lastCol - c0;
        // Row c0 + k starts column c0 + 1 at band[first + k * (ld - 1)].
        const first = c0 * ld + 1 + below;
        for (let t = 0; t < span; t++) dots[t] = band[first + t];
        for (let k = 1; k < length; k++) addScaled(reflector[k], band, first + k * down, dots, 0, span);
        for (let k = 0; k < length; k++) addScaled(-tauLeft * reflector[k], dots, 0, band, first + k * down, span);
      }

      row = c0;
      c0 = c1 + 1;
      c1 = Math.min(c1 + width, n - 1);
    }
  }
  for (let i = 0; i < n; i++) d[i] = band[i * ld + below];
  for (let i = 0; i + 1 < n; i++) e[i] = band[i * ld + 1 + below];
}
