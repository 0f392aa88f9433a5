/**
 * Householder reflectors, H = I - tau * v * v^T with v[0] = 1, the building block of every
 * reduction in this folder. Callers keep matrices scaled so that their largest entry is about 1
 * (see `singularValues`), which is why plain sums of squares cannot overflow here.
 */

/**
 * Turns `x = [alpha, x_1 .. x_{count-1}]` (read from `data` at `offset`, `offset + stride`, ...)
 * into the reflector that maps x to `[beta, 0, .., 0]` (LAPACK's dlarfg). On return `data[offset]`
 * holds beta and the other positions hold v_1 .. v_{count-1} (v_0 = 1 is implicit); the result
 * is tau, 0 when x is already of that form (H = I, nothing overwritten).
 */
export function generateReflector(data: Float64Array, offset: number, count: number, stride: number): number {
  if (count <= 1) return 0;
  let tailSquares = 0;
  for (let k = 1, p = offset + stride; k < count; k++, p += stride) {
    const x = data[p];
    tailSquares += x * x;
  }
  if (tailSquares === 0) return 0;
  const alpha = data[offset];
  const norm = Math.sqrt(alpha * alpha + tailSquares);
  // beta takes the sign opposite to alpha so that alpha - beta never cancels.
  const beta = alpha >= 0 ? -norm : norm;
  const tau = (beta - alpha) / beta;
  const scale = 1 / (alpha - beta);
  for (let k = 1, p = offset + stride; k < count; k++, p += stride) data[p] *= scale;
  data[offset] = beta;
  return tau;
}

/**
 * The triangular factor T of a block of `count` reflectors (LAPACK's dlarft, forward,
 * column-wise): H_0 H_1 .. H_{count-1} = I - V T V^T. `gram` holds V^T V (only the strict upper
 * triangle is read: gram[r * ldg + c] = v_r . v_c for r < c) and `taus` the count taus. T is
 * written upper-triangular into `t` (count x count, row stride ldt); the strict lower triangle is
 * set to 0 so the caller can multiply with it as a full matrix.
 */
export function blockReflectorFactor(
  gram: Float64Array,
  ldg: number,
  taus: Float64Array,
  count: number,
  t: Float64Array,
  ldt: number,
): void {
  for (let j = 0; j < count; j++) {
    const tauJ = taus[j];
    for (let r = j + 1; r < count; r++) t[r * ldt + j] = 0;
    t[j * ldt + j] = tauJ;
    // T[0:j, j] = -tau_j * T[0:j, 0:j] * (V[:, 0:j]^T v_j); T[0:j,0:j] is upper triangular, so
    // row r only needs the products from r on, and computing rows top-down reads each product
    // before it is overwritten.
    for (let r = 0; r < j; r++) t[r * ldt + j] = -tauJ * gram[r * ldg + j];
    for (let r = 0; r < j; r++) {
      let sum = 0;
      for (let q = r; q < j; q++) sum += t[r * ldt + q] * t[q * ldt + j];
      t[r * ldt + j] = sum;
    }
  }
}
