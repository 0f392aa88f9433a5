/**
 * onnxruntime's 8-bit linear weight quantization (`quant_utils.py`: `get_qmin_qmax_for_qType`,
 * `compute_scale_zp`, `quantize_nparray`), as its dynamic quantizer applies it to MatMul weights
 * and embedding tables (transformers.js `model_quantized`, `model_int8`, `model_uint8`):
 *
 * - range: int8 symmetric [-127, 127], int8 [-128, 127], uint8 [0, 255]; with reduced range int8
 *   [-64, 64] and uint8 [0, 127];
 * - `rmin = min(min(x), 0)`, `rmax = max(max(x), 0)`; symmetric: both set to -/+ max|x|;
 *   `scale = (rmax - rmin) / (qmax - qmin)` in float64 from float32 extremes, then float32;
 *   zero point `round((qmin + qmax) / 2)` (symmetric) or `round(qmin - rmin / scale)`; a scale
 *   below float32's smallest normal becomes 1 with zero point 0;
 * - `q = clip(round_half_even(x / scale) + zero_point)` to the full type range.
 *
 * Per channel: one scale and zero point per index of `axis`, each from that slice alone.
 */
import { roundHalfEven } from './rounding';

export type Int8Type = 'int8' | 'uint8';

export interface Linear8Options {
  readonly type: Int8Type;
  readonly symmetric: boolean;
  readonly reduceRange: boolean;
  /** Quantize each index of this axis of `dims` separately; absent: one scale for the tensor. */
  readonly axis?: number;
}

export interface Linear8Result {
  readonly quantized: Int8Array | Uint8Array;
  /** One per channel (length 1 per tensor). */
  readonly scales: Float32Array;
  readonly zeroPoints: Int8Array | Uint8Array;
}

const FLOAT32_TINY = 1.1754943508222875e-38;
const { fround, max, min, abs } = Math;

/** `[qmin, qmax]` the scale is computed for. */
export function quantizedRange(type: Int8Type, symmetric: boolean, reduceRange: boolean): [number, number] {
  if (reduceRange) return type === 'int8' ? [-64, 64] : [0, 127];
  if (type === 'int8') return symmetric ? [-127, 127] : [-128, 127];
  return [0, 255];
}

/** Scale (float32) and zero point for values spanning [minValue, maxValue]. */
export function scaleAndZeroPoint(minValue: number, maxValue: number, qmin: number, qmax: number, symmetric: boolean): { scale: number; zeroPoint: number } {
  let rmin = min(minValue, 0);
  let rmax = max(maxValue, 0);
  if (symmetric) {
    const absMax = max(abs(rmin), abs(rmax));
    rmin = -absMax;
    rmax = absMax;
  }
  const scale = fround(rmax - rmin) / (qmax - qmin);
  if (scale < FLOAT32_TINY) return { scale: 1, zeroPoint: 0 };
  const zeroPoint = symmetric ? roundHalfEven((qmin + qmax) / 2) : roundHalfEven(qmin - rmin / scale);
  return { scale: fround(scale), zeroPoint };
}

/** Quantizes `values` (row-major `dims`) per tensor or per index of `options.axis`. */
export function quantizeLinear8(values: Float32Array, dims: readonly number[], options: Linear8Options): Linear8Result {
  const [qmin, qmax] = quantizedRange(options.type, options.symmetric, options.reduceRange);
  const [low, high] = options.type === 'int8' ? [-128, 127] : [0, 255];
  const axis = options.axis;
  const channels = axis === undefined ? 1 : (dims[axis] as number);
  let inner = 1;
  if (axis !== undefined) for (let d = axis + 1; d < dims.length; d++) inner *= dims[d] as number;
  const period = channels * inner;
  const channelOf = (i: number) => (axis === undefined ? 0 : Math.floor((i % period) / inner));
  const lows = new Float32Array(channels).fill(Infinity);
  const highs = new Float32Array(channels).fill(-Infinity);
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    const v = values[i] as number;
    if (v < (lows[c] as number)) lows[c] = v;
    if (v > (highs[c] as number)) highs[c] = v;
  }
  const scales = new Float32Array(channels);
  const zeroPoints = options.type === 'int8' ? new Int8Array(channels) : new Uint8Array(channels);
  for (let c = 0; c < channels; c++) {
    const { scale, zeroPoint } = values.length === 0 ? { scale: 1, zeroPoint: 0 } : scaleAndZeroPoint(lows[c]!, highs[c]!, qmin, qmax, options.symmetric);
    scales[c] = scale;
    zeroPoints[c] = zeroPoint;
  }
  const quantized = options.type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    // numpy divides float32 by float32: the correctly rounded float32 quotient.
    const q = roundHalfEven(fround((values[i] as number) / (scales[c] as number))) + (zeroPoints[c] as number);
    quantized[i] = min(high, max(low, q));
  }
  return { quantized, scales, zeroPoints };
}
