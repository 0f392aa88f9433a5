/**
 * com.microsoft `MatMulBnb4` (bitsandbytes 4-bit) quantization, as onnxruntime's
 * `MatMulBnb4Quantizer` writes it for transformers.js `model_bnb4` (`blockwise_quant_block_bnb4.h`):
 *
 * - the weight `W [K, N]` is transposed to `[N, K]` and flattened; blocks are runs of
 *   `blockSize` consecutive values of that flat array (a block spans two columns when
 *   `K % blockSize != 0`);
 * - each block keeps `absmax = max |x|`; each value `x / absmax` maps to the nearest code of
 *   the NF4 table (`quant_type` 1) or the FP4 table (0);
 * - two codes per byte, the **high** nibble holding the even index; an odd tail pairs with the
 *   code of 0.
 *
 * Dequantized: `x = table[code] * absmax[f / blockSize]` for flat index `f = n * K + k`.
 */
export const NF4 = 1;
export const FP4 = 0;

export const NF4_TABLE: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

export const FP4_TABLE: readonly number[] = [
  0, 5.208333333e-3, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25, -0, -5.208333333e-3, -0.66666667, -1.0, -0.33333333, -0.5, -0.16666667, -0.25,
];

export interface Bnb4Shape {
  readonly k: number;
  readonly n: number;
  readonly blockSize: number;
  /** 1 (NF4) or 0 (FP4). */
  readonly quantType: number;
}

export interface Bnb4Tensors {
  /** `[(N * K + 1) / 2]` packed codes. */
  readonly packed: Uint8Array;
  /** `[ceil(N * K / blockSize)]`. */
  readonly absmax: Float32Array;
}

const { fround, abs } = Math;

/** `QuantizeOneNF4`: the binary search over the table's midpoints (strict `>`, so a midpoint goes down). */
function nf4Code(x: number): number {
  if (x > 0.03979014977812767) {
    if (x > 0.3893125355243683) {
      if (x > 0.6427869200706482) return x > 0.8614784181118011 ? 0b1111 : 0b1110;
      return x > 0.5016634166240692 ? 0b1101 : 0b1100;
    }
    if (x > 0.2035212516784668) return x > 0.2920137718319893 ? 0b1011 : 0b1010;
    return x > 0.1202552504837513 ? 0b1001 : 0b1000;
  }
  if (x > -0.33967943489551544) {
    if (x > -0.13791173323988914) return x > -0.045525018125772476 ? 0b0111 : 0b0110;
    return x > -0.23460740596055984 ? 0b0101 : 0b0100;
  }
  if (x > -0.6106329262256622) return x > -0.4599952697753906 ? 0b0011 : 0b0010;
  return x > -0.8480964004993439 ? 0b0001 : 0b0000;
}

/** `QuantizeOneFP4`: sign bit 3, magnitude from thresholds on |x|. */
function fp4Code(x: number): number {
  const sign = x < 0 ? 0b1000 : 0;
  const a = abs(x);
  let code: number;
  if (a > 0.29166667) code = a > 0.583333 ? (a > 0.8333333 ? 0b0011 : 0b0010) : a > 0.4166667 ? 0b0101 : 0b0100;
  else if (a > 0.0859375) code = a > 0.20833333 ? 0b0111 : 0b0110;
  else code = a > 0.00260417 ? 0b0001 : 0b0000;
  return code + sign;
}

export function bnb4Table(quantType: number): readonly number[] {
  if (quantType === NF4) return NF4_TABLE;
  if (quantType === FP4) return FP4_TABLE;
  throw new Error(`MatMulBnb4: unknown quant_type ${quantType} (0 = FP4, 1 = NF4)`);
}

/** Quantizes `weight` (row-major `[K, N]`, the MatMul orientation) as onnxruntime does. */
export function quantizeBnb4(weight: ArrayLike<number>, shape: Bnb4Shape): Bnb4Tensors {
  const { k, n, blockSize, quantType } = shape;
  if (weight.length !== k * n) throw new Error(`MatMulBnb4 quantization: ${weight.length} values for a [${k}, ${n}] weight`);
  bnb4Table(quantType);
  const encode = quantType === NF4 ? nf4Code : fp4Code;
  const numel = k * n;
  const blocks = Math.ceil(numel / blockSize);
  const packed = new Uint8Array(Math.ceil(numel / 2));
  const absmax = new Float32Array(blocks);
  const at = (f: number) => weight[(f % k) * n + Math.floor(f / k)] as number; // flat index of W^T
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, numel);
    let m = 0;
    for (let f = start; f < end; f++) m = Math.max(m, abs(at(f)));
    absmax[b] = m;
    const stored = absmax[b]!;
    const reciprocal = stored !== 0 ? fround(1 / stored) : 0;
    for (let f = start; f < end; f++) {
      const code = encode(fround(at(f) * reciprocal));
      packed[f >> 1] |= f % 2 === 0 ? code << 4 : code;
    }
  }
  if (numel % 2 === 1) packed[packed.length - 1] |= encode(0);
  return { packed, absmax };
}

/** Dequantized values in the stored orientation, row-major `[N, K]` (W transposed). */
export function dequantizeBnb4(tensors: { packed: ArrayLike<number>; absmax: ArrayLike<number> }, shape: Bnb4Shape): Float32Array {
  const table = bnb4Table(shape.quantType);
  const numel = shape.k * shape.n;
  const out = new Float32Array(numel);
  for (let f = 0; f < numel; f++) {
    const byte = tensors.packed[f >> 1] as number;
    const code = f % 2 === 0 ? byte >> 4 : byte & 0xf;
    out[f] = fround((table[code] as number) * (tensors.absmax[Math.floor(f / shape.blockSize)] as number));
  }
  return out;
}

/**
 * Whether cutting output columns `cols` and input rows `rows` (ascending) keeps whole blocks,
 * so that the kept codes and absmax values can be copied: blocks must not span columns
 * (`K % blockSize == 0`) and kept rows must be whole aligned blocks.
 */
export function bnb4SliceIsExact(shape: Bnb4Shape, rows: readonly number[] | undefined): boolean {
  if (shape.k % shape.blockSize !== 0) return false;
  if (!rows) return true;
  for (let i = 0; i < rows.length; i += shape.blockSize) {
    const first = rows[i]!;
    if (first % shape.blockSize !== 0) return false;
    for (let j = 0; j < shape.blockSize; j++) if (rows[i + j] !== first + j) return false;
  }
  return true;
}

/** The stored tensors keeping columns `cols` and rows `rows` byte for byte (`bnb4SliceIsExact` must hold). */
export function sliceBnb4(tensors: Bnb4Tensors, shape: Bnb4Shape, cols: readonly number[] | undefined, rows: readonly number[] | undefined): { tensors: Bnb4Tensors; shape: Bnb4Shape } {
  if (!bnb4SliceIsExact(shape, rows)) throw new Error('internal: a MatMulBnb4 cut through blocks must be re-quantized');
  const keptCols = cols ?? Array.from({ length: shape.n }, (_, i) => i);
  const blocksPerCol = shape.k / shape.blockSize;
  const keptBlocks = rows ? Array.from({ length: rows.length / shape.blockSize }, (_, i) => rows[i * shape.blockSize]! / shape.blockSize) : Array.from({ length: blocksPerCol }, (_, i) => i);
  const out: Bnb4Shape = { ...shape, k: keptBlocks.length * shape.blockSize, n: keptCols.length };
  const half = shape.blockSize / 2;
  const packed = new Uint8Array((out.k * out.n) / 2);
  const absmax = new Float32Array((out.k * out.n) / shape.blockSize);
  let b = 0;
  for (const col of keptCols) {
    for (const block of keptBlocks) {
      const from = col * blocksPerCol + block;
      packed.set(tensors.packed.subarray(from * half, (from + 1) * half), b * half);
      absmax[b++] = tensors.absmax[from]!;
    }
  }
  return { tensors: { packed, absmax }, shape: out };
}
