/**
 * IEEE half precision (float16) and bfloat16 conversions, bit patterns held in plain numbers or
 * Uint16Arrays. Float32 -> 16-bit conversions round to nearest, ties to even (as numpy and
 * PyTorch do), so weights written by this package match what those tools write.
 */

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

let halfTable: Float32Array | undefined;

/** All 65536 float16 values, built on first use (256 KiB): a lookup beats bit twiddling per element. */
function float16Table(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) table[bits] = float16BitsToFloat32(bits);
  halfTable = table;
  return table;
}

/** The value of one float16 bit pattern. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** The float16 bit pattern nearest to `value` (ties to even; overflow gives infinity). */
export function float32ToFloat16Bits(value: number): number {
  scratch[0] = value;
  const x = scratchBits[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const halfExponent = exponent - 112; // rebias 127 -> 15
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** The value of one bfloat16 bit pattern. */
export function bfloat16BitsToFloat32(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratch[0] as number;
}

/** The bfloat16 bit pattern nearest to `value` (ties to even; NaN stays NaN). */
export function float32ToBfloat16Bits(value: number): number {
  scratch[0] = value;
  const x = scratchBits[0] as number;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts float16 bit patterns to float32 values. */
export function float16ToFloat32Array(bits: ArrayLike<number>): Float32Array {
  const table = float16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < out.length; i++) out[i] = table[(bits[i] as number) & 0xffff] as number;
  return out;
}

/** Converts bfloat16 bit patterns to float32 values. */
export function bfloat16ToFloat32Array(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < out.length; i++) outBits[i] = ((bits[i] as number) & 0xffff) << 16;
  return out;
}

/** Rounds float values to float16 bit patterns. */
export function float32ToFloat16Array(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = float32ToFloat16Bits(values[i] as number);
  return out;
}

/** Rounds float values to bfloat16 bit patterns. */
export function float32ToBfloat16Array(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = float32ToBfloat16Bits(values[i] as number);
  return out;
}
