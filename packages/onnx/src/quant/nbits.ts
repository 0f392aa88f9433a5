/**
 * com.microsoft `MatMulNBits` block quantization, as onnxruntime's `MatMulNBitsQuantizer`
 * (default algorithm: MLAS `MlasQuantizeBlockwise` through `quantize_matmul_4bits`) writes it for
 * transformers.js `model_q4` / `model_q4f16` and onnxruntime-genai int4 models.
 *
 * The weight `W [K, N]` (`Y = A W`) is quantized per column in blocks of `blockSize` values
 * along K (K padded to whole blocks; padding takes no part in the ranges):
 *
 * - symmetric (the default, no zero points): the block's signed extreme `m` (the larger of |max|
 *   and |min|, ties to min) gives `scale = -m / 2^(bits-1)` (negative when the extreme is
 *   positive), zero point `2^(bits-1)`;
 * - asymmetric: `min = min(min, 0)`, `max = max(max, 0)`, `scale = (max - min) / (2^bits - 1)`,
 *   zero point `clamp(roundf(-min / scale))`;
 * - `code = clamp(roundf(v * (1 / scale) + zp), 0, 2^bits - 1)` in float32 (`roundf`: half away
 *   from zero), the reciprocal taken from the stored scale, 0 for a zero scale.
 *
 * Storage: `B [N, k_blocks, blockSize * bits / 8]` uint8, codes packed low bits first along K;
 * `scales [N * k_blocks]` (index `n * k_blocks + block`); zero points (asymmetric only) packed
 * like the codes, `ceil(k_blocks * bits / 8)` bytes per column. Dequantized:
 * `W[k][n] = (code - zp) * scales[n * k_blocks + k / blockSize]`.
 */
import { divF32, roundHalfAway } from './rounding';

export interface NBitsShape {
  /** Input features (rows of W). */
  readonly k: number;
  /** Output features (columns of W). */
  readonly n: number;
  readonly bits: number;
  readonly blockSize: number;
}

export interface NBitsTensors {
  /** `[N, k_blocks, blob]` packed codes. */
  readonly packed: Uint8Array;
  /** `[N * k_blocks]`. */
  readonly scales: Float32Array;
  /** Packed zero points, `[N * ceil(k_blocks * bits / 8)]`; absent for symmetric blocks (zero point `2^(bits-1)`). */
  readonly zeroPoints?: Uint8Array;
}

export function kBlocksOf(shape: NBitsShape): number {
  return Math.ceil(shape.k / shape.blockSize);
}

export function blobBytesOf(shape: NBitsShape): number {
  return (shape.blockSize * shape.bits) / 8;
}

export function zeroPointRowBytes(shape: NBitsShape): number {
  return Math.ceil((kBlocksOf(shape) * shape.bits) / 8);
}

/** Code `i` of `bits` bits from low-first packed bytes starting at `offset`. */
export function packedCode(bytes: ArrayLike<number>, offset: number, i: number, bits: number): number {
  const bit = i * bits;
  return ((bytes[offset + (bit >> 3)] as number) >> (bit & 7)) & ((1 << bits) - 1);
}

function setPackedCode(bytes: Uint8Array, offset: number, i: number, bits: number, code: number): void {
  const bit = i * bits;
  const at = offset + (bit >> 3);
  const shift = bit & 7;
  const mask = ((1 << bits) - 1) << shift;
  bytes[at] = ((bytes[at] as number) & ~mask) | ((code << shift) & mask);
}

/**
 * Quantizes `weight` (row-major `[K, N]`, the MatMul orientation) as MLAS does. `bits` 2, 4 or
 * 8; `blockSize` a power of two from 16.
 */
export function quantizeNBits(weight: ArrayLike<number>, shape: NBitsShape, symmetric = true): NBitsTensors {
  const { k, n, bits, blockSize } = shape;
  if (weight.length !== k * n) throw new Error(`MatMulNBits quantization: ${weight.length} values for a [${k}, ${n}] weight`);
  const kBlocks = kBlocksOf(shape);
  const blob = blobBytesOf(shape);
  const perByte = 8 / bits;
  const maxCode = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const packed = new Uint8Array(n * kBlocks * blob);
  const scales = new Float32Array(n * kBlocks);
  const zeroRow = zeroPointRowBytes(shape);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * zeroRow);
  const codes = new Uint8Array(perByte);
  for (let col = 0; col < n; col++) {
    const zps = new Uint8Array(kBlocks).fill(mid);
    for (let block = 0; block < kBlocks; block++) {
      const start = block * blockSize;
      const end = Math.min(start + blockSize, k);
      let lo = Number.MAX_VALUE;
      let hi = -Number.MAX_VALUE;
      for (let r = start; r < end; r++) {
        const v = weight[r * n + col] as number;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (symmetric) {
        const extreme = Math.abs(hi) > Math.abs(lo) ? hi : lo;
        scales[col * kBlocks + block] = divF32(-extreme, mid);
      } else {
        lo = Math.min(lo, 0);
        hi = Math.max(hi, 0);
        const scale = divF32(Math.fround(hi - lo), maxCode);
        const zp = scale !== 0 ? Math.fround(0 - divF32(lo, scale)) : lo;
        zps[block] = zp < 0 ? 0 : zp > maxCode ? maxCode : roundHalfAway(zp);
        scales[col * kBlocks + block] = scale;
      }
    }
    if (zeroPoints) for (let block = 0; block < kBlocks; block++) setPackedCode(zeroPoints, col * zeroRow, block, bits, zps[block]!);
    // MLAS packs `perByte` rows at a time and does not clear its code buffer within a 2-block
    // thread tile: a padded slot of the last byte repeats the previous byte's code there.
    const tileRows = blockSize * perByte;
    for (let r = 0; r < k; r += perByte) {
      if (r % tileRows === 0) codes.fill(0);
      for (let l = 0; l < perByte && r + l < k; l++) {
        const block = Math.floor((r + l) / blockSize);
        const scale = scales[col * kBlocks + block]!;
        const reciprocal = scale !== 0 ? divF32(1, scale) : 0;
        const v = Math.fround(Math.fround((weight[(r + l) * n + col] as number) * reciprocal) + zps[block]!);
        const code = roundHalfAway(v);
        codes[l] = code < 0 ? 0 : code > maxCode ? maxCode : code;
      }
      let byte = 0;
      for (let l = 0; l < perByte; l++) byte |= codes[l]! << (l * bits);
      packed[col * kBlocks * blob + r / perByte] = byte;
    }
  }
  return zeroPoints ? { packed, scales, zeroPoints } : { packed, scales };
}

/** Dequantized values in the stored orientation, row-major `[N, K]`; `scales` may be any float array, `zeroPoints` packed uint8. */
export function dequantizeNBits(tensors: { packed: ArrayLike<number>; scales: ArrayLike<number>; zeroPoints?: ArrayLike<number> }, shape: NBitsShape): Float32Array {
  const { k, n, bits, blockSize } = shape;
  const kBlocks = kBlocksOf(shape);
  const blob = blobBytesOf(shape);
  const zeroRow = zeroPointRowBytes(shape);
  const mid = 1 << (bits - 1);
  const out = new Float32Array(n * k);
  for (let col = 0; col < n; col++) {
    for (let block = 0; block < kBlocks; block++) {
      const scale = tensors.scales[col * kBlocks + block] as number;
      const zp = tensors.zeroPoints ? packedCode(tensors.zeroPoints, col * zeroRow, block, bits) : mid;
      const offset = (col * kBlocks + block) * blob;
      const end = Math.min(blockSize, k - block * blockSize);
      for (let i = 0; i < end; i++) out[col * k + block * blockSize + i] = (packedCode(tensors.packed, offset, i, bits) - zp) * scale;
    }
  }
  return out;
}

/**
 * The blocks along K that `keptRows` (ascending input-feature indices) keeps whole, when it is
 * made of whole blocks only (the short last block counts as whole); `undefined` when it cuts
 * through a block, so the weight must be re-quantized.
 */
export function wholeBlocks(keptRows: readonly number[], k: number, blockSize: number): number[] | undefined {
  const blocks: number[] = [];
  let i = 0;
  while (i < keptRows.length) {
    const first = keptRows[i]!;
    if (first % blockSize !== 0) return undefined;
    const end = Math.min(first + blockSize, k);
    for (let r = first; r < end; r++, i++) if (keptRows[i] !== r) return undefined;
    blocks.push(first / blockSize);
  }
  // A short last block must stay last: only then is the new K's padding where the old one was.
  const last = blocks[blocks.length - 1];
  const shortLast = k % blockSize !== 0 ? Math.floor(k / blockSize) : -1;
  if (last !== undefined && blocks.includes(shortLast) && last !== shortLast) return undefined;
  return blocks;
}

/**
 * The stored tensors of `shape` keeping output columns `cols` (N) and whole K blocks `blocks`
 * (from `wholeBlocks`), byte for byte: codes, scales and zero points of each kept block as they
 * were (zero points re-packed when blocks shift within a byte).
 */
export function sliceNBits(tensors: NBitsTensors, shape: NBitsShape, cols: readonly number[] | undefined, blocks: readonly number[] | undefined): { tensors: NBitsTensors; shape: NBitsShape } {
  const kBlocks = kBlocksOf(shape);
  const blob = blobBytesOf(shape);
  const keptCols = cols ?? Array.from({ length: shape.n }, (_, i) => i);
  const keptBlocks = blocks ?? Array.from({ length: kBlocks }, (_, i) => i);
  const newK = keptBlocks.reduce((sum, b) => sum + Math.min(shape.blockSize, shape.k - b * shape.blockSize), 0);
  const out: NBitsShape = { ...shape, k: newK, n: keptCols.length };
  const newBlocks = keptBlocks.length;
  const packed = new Uint8Array(keptCols.length * newBlocks * blob);
  const scales = new Float32Array(keptCols.length * newBlocks);
  const zeroRow = zeroPointRowBytes(shape);
  const newZeroRow = zeroPointRowBytes(out);
  const zeroPoints = tensors.zeroPoints ? new Uint8Array(keptCols.length * newZeroRow) : undefined;
  keptCols.forEach((col, c) => {
    keptBlocks.forEach((block, b) => {
      const from = (col * kBlocks + block) * blob;
      packed.set(tensors.packed.subarray(from, from + blob), (c * newBlocks + b) * blob);
      scales[c * newBlocks + b] = tensors.scales[col * kBlocks + block]!;
      if (zeroPoints) setPackedCode(zeroPoints, c * newZeroRow, b, shape.bits, packedCode(tensors.zeroPoints!, col * zeroRow, block, shape.bits));
    });
  });
  return { tensors: zeroPoints ? { packed, scales, zeroPoints } : { packed, scales }, shape: out };
}
