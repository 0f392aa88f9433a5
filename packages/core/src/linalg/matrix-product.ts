/**
 * `C -= P Q` on plain row-major Float64Arrays, for callers outside the singular-value reduction
 * (the planner's factorizations and OBS downdates): the same tiled kernels, the WebAssembly SIMD
 * ones where they run (`defaultProductKernels`), with the operands copied into their linear
 * memory per call. The copies move O(rows x cols + depth x rows) numbers against
 * 2 x rows x cols x depth operations, so products smaller than `MIN_WASM_WORK` stay in
 * TypeScript.
 */
import { packColumnStrips, subtractProduct, TYPESCRIPT_TILES } from './block-products';
import { defaultProductKernels } from './singular-values';
import { openWasmArena } from './wasm/product-kernels';

/** Inner-index slice per kernel call: a packed strip of Q (4 x depth numbers) stays in L1 cache. */
const DEPTH_SLICE = 256;
/** rows x cols x depth below which copying into WebAssembly memory does not pay. */
const MIN_WASM_WORK = 32 * 32 * 32;

/**
 * C -= P Q on the `rows x cols` block of `c` at `cOffset` (row stride `ldc`). P is `rows x depth`,
 * given as its transpose `pt` (`depth x rows`, row stride `ldpt`, starting at `ptOffset`); Q is
 * `depth x cols` (row stride `ldq`, starting at `qOffset`). `c` must not share memory with `pt`
 * or `q` inside the block written.
 */
export function subtractMatrixProduct(
  c: Float64Array,
  cOffset: number,
  ldc: number,
  rows: number,
  cols: number,
  pt: Float64Array,
  ptOffset: number,
  ldpt: number,
  depth: number,
  q: Float64Array,
  qOffset: number,
  ldq: number,
): void {
  if (rows <= 0 || cols <= 0 || depth <= 0) return;
  const wasm = rows * cols * depth >= MIN_WASM_WORK && defaultProductKernels().kernels === 'wasm-simd';
  for (let k0 = 0; k0 < depth; k0 += DEPTH_SLICE) {
    const slice = Math.min(DEPTH_SLICE, depth - k0);
    const sliceQ = q.subarray(qOffset + k0 * ldq);
    const slicePt = pt.subarray(ptOffset + k0 * ldpt);
    const packedLength = (cols >> 2) * slice * 4;
    const arena = wasm ? openWasmArena([rows * cols, slice * rows, packedLength]) : undefined;
    if (!arena) {
      const packed = new Float64Array(packedLength);
      packColumnStrips(sliceQ, ldq, slice, cols, packed);
      subtractProduct(c, cOffset, ldc, rows, cols, slicePt, ldpt, slice, sliceQ, ldq, packed, TYPESCRIPT_TILES);
      continue;
    }
    const block = arena.take(rows * cols);
    const left = arena.take(slice * rows);
    const packed = arena.take(packedLength);
    for (let i = 0; i < rows; i++) block.set(c.subarray(cOffset + i * ldc, cOffset + i * ldc + cols), i * cols);
    for (let k = 0; k < slice; k++) left.set(slicePt.subarray(k * ldpt, k * ldpt + rows), k * rows);
    packColumnStrips(sliceQ, ldq, slice, cols, packed);
    subtractProduct(block, 0, cols, rows, cols, left, rows, slice, sliceQ, ldq, packed, arena.tiles);
    for (let i = 0; i < rows; i++) c.set(block.subarray(i * cols, (i + 1) * cols), cOffset + i * ldc);
  }
}
