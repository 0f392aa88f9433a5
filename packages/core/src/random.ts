/**
 * Seeded pseudo-random numbers that give the same stream on every machine and run: a
 * xoshiro128** integer stream (seeded through splitmix32), uniforms built from its 32-bit words,
 * and normals from a 256-layer ziggurat (Marsaglia and Tsang 2000) whose fast path uses integer
 * comparisons only. Used to draw spec weights, sample architectures and shuffle in tests.
 */

// Bound once: inside Jest's vm context every lookup of the global `Math` is slow enough to make
// drawing weights 30x slower than in plain Node.
const { imul, sqrt, floor } = Math;

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = imul(z ^ (z >>> 16), 0x85ebca6b);
  z = imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A 32-bit FNV-1a hash of a string, for deriving per-object seeds from names. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** 2^53: the ziggurat's integer magnitudes are 53-bit, as many bits as a double holds exactly. */
const TWO_POW_53 = 9007199254740992;

/**
 * exp and log from +, -, *, / alone. IEEE-754 rounds each of those exactly, so these give the
 * same bits on every machine, engine and language, which `Math.exp` and `Math.log` do not promise
 * (a C library's log differs from V8's in the last bit for some arguments). They serve the
 * ziggurat's tables and its rare slow path, so the normal stream is reproducible anywhere.
 * Accuracy: a few ulp, far beyond what sampling needs.
 */
const LN2_HI = 6.93147180369123816490e-1; // ln 2 rounded to 32 significant bits: k * LN2_HI is exact
const LN2_LO = 1.90821492927058770002e-10; // ln 2 - LN2_HI
const INV_LN2 = 1.44269504088896338700;
const SQRT_HALF = 0.7071067811865476;

/** 2^-k for k = 0..1022, by repeated halving (exact). */
const NEGATIVE_POWERS_OF_TWO = new Float64Array(1023);
NEGATIVE_POWERS_OF_TWO[0] = 1;
for (let k = 1; k < 1023; k++) NEGATIVE_POWERS_OF_TWO[k] = NEGATIVE_POWERS_OF_TWO[k - 1]! * 0.5;

/** e^x for x <= 0 (0 below -700, where e^x < 1e-304). */
function portableExp(x: number): number {
  if (x < -700) return 0;
  // x = k ln2 + r with |r| <= ln2 / 2, then the Taylor series of e^r to r^14 / 14! (< 2e-19).
  const k = floor(x * INV_LN2 + 0.5);
  const r = x - k * LN2_HI - k * LN2_LO;
  let series = 1;
  for (let n = 14; n >= 1; n--) series = 1 + (r * series) / n;
  return series * NEGATIVE_POWERS_OF_TWO[-k]!;
}

/** ln(u) for 0 < u <= 1 (-Infinity for 0). */
function portableLog(u: number): number {
  if (!(u > 0)) return -Infinity;
  // u = m 2^e with m in [sqrt(1/2), 1], then ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172,
  // from its series to s^23 / 23 (< 1e-19).
  let m = u;
  let e = 0;
  while (m < SQRT_HALF) {
    m *= 2;
    e--;
  }
  const s = (m - 1) / (m + 1);
  const z = s * s;
  let series = 0;
  for (let n = 23; n >= 3; n -= 2) series = z * (1 / n + series);
  return e * LN2_HI + (e * LN2_LO + 2 * s * (1 + series));
}

/**
 * The ziggurat of the standard normal density f(x) = exp(-x^2 / 2), 256 layers of equal area.
 *
 * Layer 0 is the base: the rectangle [0, R] x [0, f(R)] plus the tail beyond R, represented as a
 * rectangle of width `edge[0] = AREA / f(R)`. Layer i >= 1 is the rectangle [0, edge[i]] x
 * [f(edge[i]), f(edge[i + 1])], and `edge[256] = 0` closes the top. A point of layer i at
 * x = j * edge[i] / 2^53 lies wholly under the curve when x < edge[i + 1], i.e. when the integer
 * j is below `inner[i]`: that test and one multiply are the fast path taken by ~98.5% of draws.
 * The rest resolve exactly: the wedge by comparing a uniform height with f(x), the tail by
 * Marsaglia's (1964) exponential rejection method.
 *
 * R and AREA are Marsaglia and Tsang's published constants for 256 layers; the tables follow from
 * them by a fixed recurrence, computed once when the module loads, with the portable exp and log
 * above and the IEEE-exact sqrt: the same bits on every machine.
 */
const LAYERS = 256;
const R = 3.6541528853610088;
const AREA = 0.00492867323399;

const density = (x: number): number => portableExp(-0.5 * x * x);

/** edge[i]: the right edge of layer i (edge[0]: the base's virtual width; edge[256] = 0). */
const edge = new Float64Array(LAYERS + 1);
/** height[i] = f(edge[i]): layer i >= 1 spans heights [height[i], height[i + 1]]. */
const height = new Float64Array(LAYERS + 1);
/** inner[i]: integer magnitudes j < inner[i] give points wholly under the curve. */
const inner = new Float64Array(LAYERS);
/** scale[i] = edge[i] / 2^53: turns an integer magnitude into x. */
const scale = new Float64Array(LAYERS);

edge[0] = AREA / density(R);
edge[1] = R;
for (let i = 1; i < LAYERS - 1; i++) edge[i + 1] = sqrt(-2 * portableLog(AREA / edge[i]! + density(edge[i]!)));
edge[LAYERS] = 0;
for (let i = 0; i <= LAYERS; i++) height[i] = density(edge[i]!);
for (let i = 0; i < LAYERS; i++) {
  inner[i] = floor((edge[i + 1]! / edge[i]!) * TWO_POW_53);
  scale[i] = edge[i]! / TWO_POW_53;
}

export class Rng {
  /**
   * xoshiro128** state words a, b, c, d. A typed array rather than four fields: V8 keeps numbers
   * outside +-2^30 boxed in object fields, so fields would allocate on every step.
   */
  private readonly state = new Int32Array(4);

  /** `seed` may be a number or a string (hashed); equal seeds give equal streams. */
  constructor(seed: number | string) {
    const mix = { s: typeof seed === 'string' ? hashString(seed) : seed | 0 };
    const state = this.state;
    for (let k = 0; k < 4; k++) state[k] = splitmix32(mix);
    if ((state[0]! | state[1]! | state[2]! | state[3]!) === 0) state[0] = 1;
  }

  /** The next xoshiro128** output word, as a signed 32-bit integer. */
  private nextInt32(): number {
    const state = this.state;
    const b = state[1]!;
    const result = imul(rotl(imul(b, 5), 7), 9);
    const c = state[2]! ^ state[0]!;
    const d = state[3]! ^ b;
    state[0] = state[0]! ^ d;
    state[1] = b ^ c;
    state[2] = c ^ (b << 9);
    state[3] = rotl(d, 11);
    return result;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    return this.nextInt32() >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const high = this.nextInt32() >>> 5;
    const low = this.nextInt32() >>> 6;
    return (high * 67108864 + low) / TWO_POW_53;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return floor(this.uniform() * n);
  }

  /**
   * Standard normal (ziggurat). Each attempt reads two words: the first gives the layer (8 bits),
   * the sign (1 bit) and the top 23 bits of a 53-bit magnitude, the second the other 30, so the
   * layer and the position within it never share bits.
   */
  normal(): number {
    for (;;) {
      const first = this.nextInt32();
      const layer = first & 255;
      const magnitude = (first >>> 9) * 1073741824 + (this.nextInt32() >>> 2);
      let x: number;
      if (magnitude < inner[layer]!) {
        x = magnitude * scale[layer]!;
      } else {
        x = this.outsideInnerRectangle(layer, magnitude);
        if (x !== x) continue; // NaN: rejected in a wedge, start again
      }
      // The sign bit as a factor of +-1: a branch on it would be mispredicted half the time.
      return x * (1 - ((first >>> 7) & 2));
    }
  }

  /** The slow path of `normal()`: a tail draw for the base layer, else a wedge test (NaN: rejected). */
  private outsideInnerRectangle(layer: number, magnitude: number): number {
    if (layer === 0) {
      // Beyond R the density is proportional to exp(-(R + t)^2 / 2) <= exp(-R t) exp(-R^2 / 2):
      // propose t ~ Exp(R) and accept with probability exp(-t^2 / 2). 1 - uniform() is in (0, 1].
      for (;;) {
        const t = -portableLog(1 - this.uniform()) / R;
        const e = -portableLog(1 - this.uniform());
        if (e + e >= t * t) return R + t;
      }
    }
    const x = magnitude * scale[layer]!;
    const y = height[layer]! + this.uniform() * (height[layer + 1]! - height[layer]!);
    return y < density(x) ? x : NaN;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    this.shuffle(p);
    return p;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** `k` distinct indices from 0..n-1, in random order. */
  sample(n: number, k: number): number[] {
    if (k > n) throw new Error(`cannot sample ${k} of ${n}`);
    return this.permutation(n).slice(0, k);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
