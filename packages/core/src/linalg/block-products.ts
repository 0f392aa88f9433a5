/**
 * The three matrix products that apply a block of Householder reflectors to a trailing matrix.
 * Almost all of the floating-point work of `singularValues` happens here. Each product is split
 * into its full 4 x 4 tiles, which hold nearly all the work and come from a `TileKernels`
 * implementation (the register-blocked TypeScript loops below, or the WebAssembly SIMD kernels
 * of `wasm/product-kernels.ts`), and the few rows or columns left over at the edges, which are
 * always done by the TypeScript loops here. All matrices are row-major Float64Arrays addressed
 * by an offset and a row stride ("leading dimension").
 *
 * Every output entry is one sum over the inner index, accumulated in that index's order by
 * separate multiplies and adds (no fused multiply-add) from the same starting value, in every
 * implementation: so the implementations give bit-identical results, whatever their blocking.
 */

/** Rows of the tall operand that one pass keeps in L1 cache while it visits every 4-wide block. */
const ROW_CHUNK = 192;

/**
 * The full 4 x 4 tiles of the three products (see the product functions for the shapes). The
 * TypeScript implementation accepts any arrays; the WebAssembly one needs every array to be a
 * view on its linear memory (see `ProductArena`).
 */
export interface TileKernels {
  readonly name: 'typescript' | 'wasm-simd';
  /** out[r][c] += sum_{i < rows} vt[r][i] * a[i][c] for r < count, c < fullCols (both multiples of 4). */
  transposeTimesTiles(
    vt: Float64Array,
    ldv: number,
    count: number,
    a: Float64Array,
    aOffset: number,
    lda: number,
    rows: number,
    fullCols: number,
    out: Float64Array,
    ldo: number,
  ): void;
  /** C[i][4s + j] -= sum_{k < depth} pt[k][i] * qPacked(strip s)[k][j] for i < fullRows (a multiple of 4), s < strips. */
  subtractProductTiles(
    c: Float64Array,
    cOffset: number,
    ldc: number,
    fullRows: number,
    strips: number,
    pt: Float64Array,
    ldpt: number,
    depth: number,
    qPacked: Float64Array,
  ): void;
  /** out[4s + j][i] += sum_{k < cols} a[i][k] * yPacked(strip s)[k][j] for i < fullRows (a multiple of 4), s < strips. */
  timesTransposedTiles(
    a: Float64Array,
    aOffset: number,
    lda: number,
    fullRows: number,
    cols: number,
    yPacked: Float64Array,
    strips: number,
    out: Float64Array,
    ldo: number,
  ): void;
}

/**
 * Where one reduction keeps its arrays and which tile kernels run on them: `take` hands out
 * zero-filled arrays (plain ones for TypeScript, views on the linear memory for WebAssembly).
 */
export interface ProductArena {
  readonly tiles: TileKernels;
  take(length: number): Float64Array;
}

/**
 * The tiles as scalar TypeScript: per step each 4 x 4 block loads 8 numbers and does 16
 * multiply-adds, which is what lets JavaScript run these at several GFlop/s where a plain
 * row-times-vector loop (2 loads per multiply-add) stays near 1-2.
 */
export const TYPESCRIPT_TILES: TileKernels = {
  name: 'typescript',

  transposeTimesTiles(vt, ldv, count, a, aOffset, lda, rows, fullCols, out, ldo) {
    for (let i0 = 0; i0 < rows; i0 += ROW_CHUNK) {
      const i1 = Math.min(rows, i0 + ROW_CHUNK);
      for (let c = 0; c < fullCols; c += 4) {
        for (let r = 0; r < count; r += 4) {
          const o0 = r * ldo + c;
          const o1 = o0 + ldo;
          const o2 = o1 + ldo;
          const o3 = o2 + ldo;
          let s00 = out[o0], s01 = out[o0 + 1], s02 = out[o0 + 2], s03 = out[o0 + 3];
          let s10 = out[o1], s11 = out[o1 + 1], s12 = out[o1 + 2], s13 = out[o1 + 3];
          let s20 = out[o2], s21 = out[o2 + 1], s22 = out[o2 + 2], s23 = out[o2 + 3];
          let s30 = out[o3], s31 = out[o3 + 1], s32 = out[o3 + 2], s33 = out[o3 + 3];
          const pv0 = r * ldv;
          const pv1 = pv0 + ldv;
          const pv2 = pv1 + ldv;
          const pv3 = pv2 + ldv;
          let pa = aOffset + i0 * lda + c;
          for (let i = i0; i < i1; i++, pa += lda) {
            const v0 = vt[pv0 + i], v1 = vt[pv1 + i], v2 = vt[pv2 + i], v3 = vt[pv3 + i];
            const a0 = a[pa], a1 = a[pa + 1], a2 = a[pa + 2], a3 = a[pa + 3];
            s00 += v0 * a0; s01 += v0 * a1; s02 += v0 * a2; s03 += v0 * a3;
            s10 += v1 * a0; s11 += v1 * a1; s12 += v1 * a2; s13 += v1 * a3;
            s20 += v2 * a0; s21 += v2 * a1; s22 += v2 * a2; s23 += v2 * a3;
            s30 += v3 * a0; s31 += v3 * a1; s32 += v3 * a2; s33 += v3 * a3;
          }
          out[o0] = s00; out[o0 + 1] = s01; out[o0 + 2] = s02; out[o0 + 3] = s03;
          out[o1] = s10; out[o1 + 1] = s11; out[o1 + 2] = s12; out[o1 + 3] = s13;
          out[o2] = s20; out[o2 + 1] = s21; out[o2 + 2] = s22; out[o2 + 3] = s23;
          out[o3] = s30; out[o3 + 1] = s31; out[o3 + 2] = s32; out[o3 + 3] = s33;
        }
      }
    }
  },

  subtractProductTiles(c, cOffset, ldc, fullRows, strips, pt, ldpt, depth, qPacked) {
    for (let i = 0; i < fullRows; i += 4) {
      const c0 = cOffset + i * ldc;
      for (let s = 0; s < strips; s++) {
        let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
        let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
        let pq = s * depth * 4;
        let pp = i;
        for (let k = 0; k < depth; k++, pq += 4, pp += ldpt) {
          const b0 = qPacked[pq], b1 = qPacked[pq + 1], b2 = qPacked[pq + 2], b3 = qPacked[pq + 3];
          const x0 = pt[pp], x1 = pt[pp + 1], x2 = pt[pp + 2], x3 = pt[pp + 3];
          s00 += x0 * b0; s01 += x0 * b1; s02 += x0 * b2; s03 += x0 * b3;
          s10 += x1 * b0; s11 += x1 * b1; s12 += x1 * b2; s13 += x1 * b3;
          s20 += x2 * b0; s21 += x2 * b1; s22 += x2 * b2; s23 += x2 * b3;
          s30 += x3 * b0; s31 += x3 * b1; s32 += x3 * b2; s33 += x3 * b3;
        }
        let o = c0 + 4 * s;
        c[o] -= s00; c[o + 1] -= s01; c[o + 2] -= s02; c[o + 3] -= s03;
        o += ldc;
        c[o] -= s10; c[o + 1] -= s11; c[o + 2] -= s12; c[o + 3] -= s13;
        o += ldc;
        c[o] -= s20; c[o + 1] -= s21; c[o + 2] -= s22; c[o + 3] -= s23;
        o += ldc;
        c[o] -= s30; c[o + 1] -= s31; c[o + 2] -= s32; c[o + 3] -= s33;
      }
    }
  },

  timesTransposedTiles(a, aOffset, lda, fullRows, cols, yPacked, strips, out, ldo) {
    for (let k0 = 0; k0 < cols; k0 += ROW_CHUNK) {
      const k1 = Math.min(cols, k0 + ROW_CHUNK);
      for (let i = 0; i < fullRows; i += 4) {
        const a0 = aOffset + i * lda;
        const a1 = a0 + lda;
        const a2 = a1 + lda;
        const a3 = a2 + lda;
        for (let s = 0; s < strips; s++) {
          const o0 = 4 * s * ldo + i;
          const o1 = o0 + ldo;
          const o2 = o1 + ldo;
          const o3 = o2 + ldo;
          // s<row of A><row of Y>
          let s00 = out[o0], s10 = out[o0 + 1], s20 = out[o0 + 2], s30 = out[o0 + 3];
          let s01 = out[o1], s11 = out[o1 + 1], s21 = out[o1 + 2], s31 = out[o1 + 3];
          let s02 = out[o2], s12 = out[o2 + 1], s22 = out[o2 + 2], s32 = out[o2 + 3];
          let s03 = out[o3], s13 = out[o3 + 1], s23 = out[o3 + 2], s33 = out[o3 + 3];
          let py = s * cols * 4 + 4 * k0;
          for (let k = k0; k < k1; k++, py += 4) {
            const y0 = yPacked[py], y1 = yPacked[py + 1], y2 = yPacked[py + 2], y3 = yPacked[py + 3];
            const x0 = a[a0 + k], x1 = a[a1 + k], x2 = a[a2 + k], x3 = a[a3 + k];
            s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
            s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
            s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
            s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
          }
          out[o0] = s00; out[o0 + 1] = s10; out[o0 + 2] = s20; out[o0 + 3] = s30;
          out[o1] = s01; out[o1 + 1] = s11; out[o1 + 2] = s21; out[o1 + 3] = s31;
          out[o2] = s02; out[o2 + 1] = s12; out[o2 + 2] = s22; out[o2 + 3] = s32;
          out[o3] = s03; out[o3 + 1] = s13; out[o3 + 2] = s23; out[o3 + 3] = s33;
        }
      }
    }
  },
};

/** Plain arrays and the TypeScript tiles: works everywhere. */
export const TYPESCRIPT_ARENA: ProductArena = {
  tiles: TYPESCRIPT_TILES,
  take: (length) => new Float64Array(length),
};

/**
 * out[r][c] = sum_i vt[r][i] * a[i][c] for r < count, c < cols, i < rows: V^T A, where V^T is
 * `count x rows` (row stride ldv, count a multiple of 4; rows past the real reflectors must be
 * zero) and A is the `rows x cols` block of `a` starting at `aOffset`. `out` is `count x cols`,
 * row stride `cols`.
 */
export function transposeTimes(
  vt: Float64Array,
  ldv: number,
  count: number,
  a: Float64Array,
  aOffset: number,
  lda: number,
  rows: number,
  cols: number,
  out: Float64Array,
  tiles: TileKernels = TYPESCRIPT_TILES,
): void {
  const ldo = cols;
  out.fill(0, 0, count * ldo);
  const fullCols = cols - (cols % 4);
  if (fullCols > 0 && count > 0 && rows > 0) tiles.transposeTimesTiles(vt, ldv, count, a, aOffset, lda, rows, fullCols, out, ldo);
  for (let i0 = 0; i0 < rows; i0 += ROW_CHUNK) {
    const i1 = Math.min(rows, i0 + ROW_CHUNK);
    for (let c = fullCols; c < cols; c++) {
      for (let r = 0; r < count; r += 4) {
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const pv0 = r * ldv;
        let pa = aOffset + i0 * lda + c;
        for (let i = i0; i < i1; i++, pa += lda) {
          const x = a[pa];
          s0 += vt[pv0 + i] * x; s1 += vt[pv0 + ldv + i] * x; s2 += vt[pv0 + 2 * ldv + i] * x; s3 += vt[pv0 + 3 * ldv + i] * x;
        }
        out[r * ldo + c] += s0;
        out[(r + 1) * ldo + c] += s1;
        out[(r + 2) * ldo + c] += s2;
        out[(r + 3) * ldo + c] += s3;
      }
    }
  }
}

/**
 * Packs the `depth x cols` matrix Q (row stride ldq) into strips of 4 columns so that the
 * kernel of `subtractProduct` reads it sequentially: strip s holds Q[k][4s..4s+3] for each k in
 * turn. Columns past the last full strip are not packed (they are handled from Q directly).
 */
export function packColumnStrips(q: Float64Array, ldq: number, depth: number, cols: number, packed: Float64Array): void {
  const strips = cols >> 2;
  for (let s = 0; s < strips; s++) {
    let p = s * depth * 4;
    for (let k = 0, src = 4 * s; k < depth; k++, src += ldq, p += 4) {
      packed[p] = q[src];
      packed[p + 1] = q[src + 1];
      packed[p + 2] = q[src + 2];
      packed[p + 3] = q[src + 3];
    }
  }
}

/**
 * C -= P Q for the `rows x cols` block of `c` at `cOffset` (row stride ldc), where P is
 * `rows x depth`, given as its transpose P^T (`depth x rows`, row stride ldpt), and Q is
 * `depth x cols` (row stride ldq), with `qPacked` its copy made by `packColumnStrips`.
 */
export function subtractProduct(
  c: Float64Array,
  cOffset: number,
  ldc: number,
  rows: number,
  cols: number,
  pt: Float64Array,
  ldpt: number,
  depth: number,
  q: Float64Array,
  ldq: number,
  qPacked: Float64Array,
  tiles: TileKernels = TYPESCRIPT_TILES,
): void {
  const fullRows = rows - (rows % 4);
  const strips = cols >> 2;
  const fullCols = strips * 4;
  if (fullRows > 0 && strips > 0 && depth > 0) tiles.subtractProductTiles(c, cOffset, ldc, fullRows, strips, pt, ldpt, depth, qPacked);
  for (let i = 0; i < fullRows; i += 4) {
    const c0 = cOffset + i * ldc;
    for (let col = fullCols; col < cols; col++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0, pq = col, pp = i; k < depth; k++, pq += ldq, pp += ldpt) {
        const b = q[pq];
        s0 += pt[pp] * b; s1 += pt[pp + 1] * b; s2 += pt[pp + 2] * b; s3 += pt[pp + 3] * b;
      }
      c[c0 + col] -= s0;
      c[c0 + ldc + col] -= s1;
      c[c0 + 2 * ldc + col] -= s2;
      c[c0 + 3 * ldc + col] -= s3;
    }
  }
  for (let i = fullRows; i < rows; i++) {
    const cRow = cOffset + i * ldc;
    for (let k = 0; k < depth; k++) {
      const x = pt[k * ldpt + i];
      if (x === 0) continue;
      for (let col = 0, pq = k * ldq; col < cols; col++) c[cRow + col] -= x * q[pq + col];
    }
  }
}

/**
 * Packs the `count x cols` matrix Y (row stride ldy) into strips of 4 rows, each read
 * column by column (strip s holds Y[4s..4s+3][k] for each k in turn), padding rows past
 * `count` with zeros up to `paddedCount` (a multiple of 4).
 */
export function packRowStrips(y: Float64Array, ldy: number, count: number, paddedCount: number, cols: number, packed: Float64Array): void {
  for (let s = 0; s < paddedCount / 4; s++) {
    const base = s * cols * 4;
    for (let rr = 0; rr < 4; rr++) {
      const row = 4 * s + rr;
      if (row < count) {
        for (let k = 0, src = row * ldy; k < cols; k++) packed[base + 4 * k + rr] = y[src + k];
      } else {
        for (let k = 0; k < cols; k++) packed[base + 4 * k + rr] = 0;
      }
    }
  }
}

/**
 * out[r][i] = sum_k a[i][k] * y[r][k]: (A Y^T)^T, where A is the `rows x cols` block of `a` at
 * `aOffset` (row stride lda) and Y, `paddedCount x cols`, is given packed by `packRowStrips`.
 * `out` is `paddedCount x rows`, row stride `rows`.
 */
export function timesTransposed(
  a: Float64Array,
  aOffset: number,
  lda: number,
  rows: number,
  cols: number,
  yPacked: Float64Array,
  paddedCount: number,
  out: Float64Array,
  tiles: TileKernels = TYPESCRIPT_TILES,
): void {
  const ldo = rows;
  const strips = paddedCount / 4;
  const fullRows = rows - (rows % 4);
  out.fill(0, 0, paddedCount * ldo);
  if (fullRows > 0 && strips > 0 && cols > 0) tiles.timesTransposedTiles(a, aOffset, lda, fullRows, cols, yPacked, strips, out, ldo);
  for (let i = fullRows; i < rows; i++) {
    const aRow = aOffset + i * lda;
    for (let s = 0; s < strips; s++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0, py = s * cols * 4; k < cols; k++, py += 4) {
        const x = a[aRow + k];
        s0 += x * yPacked[py]; s1 += x * yPacked[py + 1]; s2 += x * yPacked[py + 2]; s3 += x * yPacked[py + 3];
      }
      const o = 4 * s * ldo + i;
      out[o] = s0; out[o + ldo] = s1; out[o + 2 * ldo] = s2; out[o + 3 * ldo] = s3;
    }
  }
}
