/** Rounding as the quantizers round (bound once: global lookups are slow inside Jest's vm context). */
const { floor, fround, abs } = Math;

/** numpy's `round` and ONNX QuantizeLinear: half to even. */
export function roundHalfEven(x: number): number {
  const f = floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** C's `roundf` on a float32 value: half away from zero. */
export function roundHalfAway(x: number): number {
  const r = floor(abs(x) + 0.5);
  return x < 0 ? -r : r;
}

/** The float32 product, as a C `float` multiplication gives it. */
export function mulF32(a: number, b: number): number {
  return fround(a * b);
}

/** The float32 quotient, as a C `float` division gives it. */
export function divF32(a: number, b: number): number {
  return fround(a / b);
}
