/** Strided-free vector kernels on contiguous Float64Array ranges. */

/** sum_{k < length} x[xOffset + k] * y[yOffset + k], with four partial sums so the additions overlap. */
export function dot(x: Float64Array, xOffset: number, y: Float64Array, yOffset: number, length: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 4 <= length; k += 4) {
    const p = xOffset + k;
    const q = yOffset + k;
    s0 += x[p] * y[q];
    s1 += x[p + 1] * y[q + 1];
    s2 += x[p + 2] * y[q + 2];
    s3 += x[p + 3] * y[q + 3];
  }
  for (; k < length; k++) s0 += x[xOffset + k] * y[yOffset + k];
  return s0 + s1 + (s2 + s3);
}

/** y[yOffset + k] += alpha * x[xOffset + k] for k < length. */
export function addScaled(alpha: number, x: Float64Array, xOffset: number, y: Float64Array, yOffset: number, length: number): void {
  for (let k = 0; k < length; k++) y[yOffset + k] += alpha * x[xOffset + k];
}
