import { defaultProductKernels, drawMatrix, Rng, singularValues, subtractMatrixProduct } from '@zerolm/core';
import {
  packColumnStrips,
  packRowStrips,
  subtractProduct,
  timesTransposed,
  transposeTimes,
  TYPESCRIPT_ARENA,
  type ProductArena,
} from '../src/linalg/block-products';
import { singularValuesTuned } from '../src/linalg/singular-values';
import { encodeModule, FunctionWriter, I32, V128, type Local } from '../src/linalg/wasm/encoder';
import { openWasmArena, productKernelBytes, wasmSimdSupport } from '../src/linalg/wasm/product-kernels';

/** max |x - y| / max(max |y|, tiny) over two equally long arrays. */
function relativeDifference(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let scale = Number.MIN_VALUE;
  for (let i = 0; i < y.length; i++) scale = Math.max(scale, Math.abs(y[i]!));
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  return worst / scale;
}

/** The slice of the WebAssembly API the encoder test uses (the project compiles without DOM types). */
const wasmApi = (
  globalThis as unknown as {
    WebAssembly: {
      validate(bytes: Uint8Array): boolean;
      Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
    };
  }
).WebAssembly;

function wasmArena(lengths: number[]): ProductArena {
  const arena = openWasmArena(lengths);
  if (arena === undefined) throw new Error('no WebAssembly arena');
  return arena;
}

/** `length` Gaussian numbers in an array from `arena`. */
function filled(arena: ProductArena, length: number, rng: Rng): Float64Array {
  const array = arena.take(length);
  for (let i = 0; i < length; i++) array[i] = rng.normal();
  return array;
}

/** Copies `source` into a new array of `arena`. */
function copyInto(arena: ProductArena, source: Float64Array): Float64Array {
  const array = arena.take(source.length);
  array.set(source);
  return array;
}

it('WebAssembly SIMD is available on this Node (>= 16.4), so the tests below run the kernels', () => {
  expect(wasmSimdSupport()).toEqual({ available: true });
  expect(defaultProductKernels().kernels).toBe(process.env['ZEROLM_NO_WASM'] === '1' ? 'typescript' : 'wasm-simd');
  expect(Array.from(productKernelBytes().slice(0, 8))).toEqual([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
});

describe('the WebAssembly encoder', () => {
  // Two functions written with the encoder, run, and checked against plain JavaScript.
  // scaleAdd(dst, src, pairs): the f64x2 at dst + 16p = 3 * x + x, x the f64x2 at src + 16p.
  function testModule(): Uint8Array {
    const scale = new FunctionWriter('scaleAdd', [I32, I32, I32]);
    const [dst, src, pairs] = scale.params as [Local, Local, Local];
    const p = scale.local(I32);
    const three = scale.local(V128);
    const x = scale.local(V128);
    scale.i32(0).v128Load64Splat(0).set(three); // byte 0 of memory holds 3.0
    scale.forRange(p, 0, pairs, 1, () => {
      scale.get(src).v128Load().set(x);
      scale.get(dst).get(x).get(three).f64x2Mul().get(x).f64x2Add().v128Store();
      scale.increment(src, 16).increment(dst, 16);
    });
    const constants = new FunctionWriter('constants', [I32]);
    const [count] = constants.params as [Local];
    const at = constants.local(I32);
    constants.i32(64).set(at);
    // Zeroes `count` 16-byte vectors from byte 64, stepping by constants that take 1 to 3 bytes
    // of signed LEB128 (net +16 per step).
    constants.countDown(count, () => {
      constants.get(at).f64x2Zero().v128Store();
      constants.increment(at, 70000).increment(at, -70000).increment(at, -200).increment(at, 216);
    });
    return encodeModule([scale, constants]);
  }

  it('emits a module that validates and computes what its code says', () => {
    const bytes = testModule();
    expect(wasmApi.validate(bytes)).toBe(true);
    const memory = new wasmApi.Memory({ initial: 1 });
    const instance = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } });
    const view = new Float64Array(memory.buffer);
    view[0] = 3;
    const source = [1.5, -2, 0.25, 1e300, -7, 3];
    view.set(source, 8);
    const scaleAdd = instance.exports['scaleAdd'] as (d: number, s: number, n: number) => void;
    scaleAdd(8 * 32, 8 * 8, 0); // a loop of no steps writes nothing
    expect(Array.from(view.subarray(32, 38))).toEqual([0, 0, 0, 0, 0, 0]);
    scaleAdd(8 * 32, 8 * 8, 3);
    expect(Array.from(view.subarray(32, 38))).toEqual(source.map((v) => v * 3 + v));
    // Three steps of 16 bytes from byte 64: doubles 8..13 zeroed, 14 left alone.
    view.fill(5, 8, 15);
    (instance.exports['constants'] as (n: number) => void)(3);
    expect(Array.from(view.subarray(8, 15))).toEqual([0, 0, 0, 0, 0, 0, 5]);
  });

  it('rejects what it cannot encode', () => {
    expect(() => new FunctionWriter('f', []).i32(2 ** 31)).toThrow(/not an i32/);
    expect(() => encodeModule([new FunctionWriter('\u00e9', [])])).toThrow(/not printable ASCII/);
  });
});

/** Reference products by plain triple loops (independent of block-products.ts). */
function naiveTransposeTimes(vt: Float64Array, ldv: number, count: number, a: Float64Array, aOffset: number, lda: number, rows: number, cols: number): Float64Array {
  const out = new Float64Array(count * cols);
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < cols; c++) {
      let sum = 0;
      for (let i = 0; i < rows; i++) sum += vt[r * ldv + i]! * a[aOffset + i * lda + c]!;
      out[r * cols + c] = sum;
    }
  }
  return out;
}

describe('the product kernels: WebAssembly SIMD and TypeScript on the same inputs', () => {
  // Shapes with every remainder of 4, row counts past the 192-row chunks, and sub-blocks of a
  // larger matrix (offset and a row stride wider than the block).
  const shapes: Array<[rows: number, cols: number, count: number]> = [
    [4, 4, 4],
    [5, 7, 4],
    [13, 10, 8],
    [37, 41, 16],
    [64, 61, 8],
    [401, 230, 12],
  ];

  it.each(shapes)('transposeTimes, %i x %i with %i reflectors', (rows, cols, count) => {
    const rng = new Rng(`tt ${rows} ${cols} ${count}`);
    const lda = cols + 3;
    const aOffset = 2 * lda + 1;
    const plainA = filled(TYPESCRIPT_ARENA, aOffset + rows * lda, rng);
    const plainV = filled(TYPESCRIPT_ARENA, count * rows, rng);
    const arena = wasmArena([plainA.length, plainV.length, count * cols]);
    const a = copyInto(arena, plainA);
    const vt = copyInto(arena, plainV);
    const fromTs = new Float64Array(count * cols);
    const fromWasm = arena.take(count * cols);
    transposeTimes(plainV, rows, count, plainA, aOffset, lda, rows, cols, fromTs);
    transposeTimes(vt, rows, count, a, aOffset, lda, rows, cols, fromWasm, arena.tiles);
    expect(relativeDifference(fromWasm, fromTs)).toBeLessThan(1e-12);
    expect(relativeDifference(fromTs, naiveTransposeTimes(plainV, rows, count, plainA, aOffset, lda, rows, cols))).toBeLessThan(1e-12);
  });

  it.each(shapes)('subtractProduct, %i x %i with depth %i', (rows, cols, depth) => {
    const rng = new Rng(`sp ${rows} ${cols} ${depth}`);
    const ldc = cols + 5;
    const cOffset = ldc + 2;
    const plainC = filled(TYPESCRIPT_ARENA, cOffset + rows * ldc, rng);
    const plainPt = filled(TYPESCRIPT_ARENA, depth * rows, rng);
    const plainQ = filled(TYPESCRIPT_ARENA, depth * cols, rng);
    const plainPacked = new Float64Array(depth * cols);
    packColumnStrips(plainQ, cols, depth, cols, plainPacked);
    const arena = wasmArena([plainC.length, plainPt.length, plainQ.length, depth * cols]);
    const c = copyInto(arena, plainC);
    const pt = copyInto(arena, plainPt);
    const q = copyInto(arena, plainQ);
    const packed = arena.take(depth * cols);
    packColumnStrips(q, cols, depth, cols, packed);
    const expected = Float64Array.from(plainC);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let sum = 0;
        for (let k = 0; k < depth; k++) sum += plainPt[k * rows + i]! * plainQ[k * cols + j]!;
        expected[cOffset + i * ldc + j] -= sum;
      }
    }
    subtractProduct(plainC, cOffset, ldc, rows, cols, plainPt, rows, depth, plainQ, cols, plainPacked);
    subtractProduct(c, cOffset, ldc, rows, cols, pt, rows, depth, q, cols, packed, arena.tiles);
    expect(relativeDifference(c, plainC)).toBeLessThan(1e-12);
    expect(relativeDifference(plainC, expected)).toBeLessThan(1e-12);
  });

  it.each(shapes)('timesTransposed, %i x %i with %i reflectors', (rows, cols, count) => {
    const rng = new Rng(`tx ${rows} ${cols} ${count}`);
    const lda = cols + 1;
    const aOffset = lda;
    const padded = (count + 3) & ~3;
    const plainA = filled(TYPESCRIPT_ARENA, aOffset + rows * lda, rng);
    const plainY = filled(TYPESCRIPT_ARENA, count * cols, rng);
    const plainPacked = new Float64Array(padded * cols);
    packRowStrips(plainY, cols, count, padded, cols, plainPacked);
    const arena = wasmArena([plainA.length, padded * cols, padded * rows]);
    const a = copyInto(arena, plainA);
    const packed = copyInto(arena, plainPacked);
    const fromTs = new Float64Array(padded * rows);
    const fromWasm = arena.take(padded * rows);
    timesTransposed(plainA, aOffset, lda, rows, cols, plainPacked, padded, fromTs);
    timesTransposed(a, aOffset, lda, rows, cols, packed, padded, fromWasm, arena.tiles);
    expect(relativeDifference(fromWasm, fromTs)).toBeLessThan(1e-12);
    // (A Y^T)^T row r is Y's row r times A^T: the naive V^T A with V^T = Y and A = A^T.
    const aTransposed = new Float64Array(cols * rows);
    for (let i = 0; i < rows; i++) for (let k = 0; k < cols; k++) aTransposed[k * rows + i] = plainA[aOffset + i * lda + k]!;
    const expected = naiveTransposeTimes(zeroPadded(plainY, count, padded, cols), cols, padded, aTransposed, 0, rows, cols, rows);
    expect(relativeDifference(fromTs, expected)).toBeLessThan(1e-12);
  });

  it('refuses arrays that are not on the kernels\' memory, naming the problem', () => {
    const arena = wasmArena([16]);
    const onMemory = arena.take(16);
    expect(() => transposeTimes(new Float64Array(16), 4, 4, onMemory, 0, 4, 4, 4, arena.take(0), arena.tiles)).toThrow(
      /not a view on the kernels' memory/,
    );
  });
});

/** Y (count x cols) padded with zero rows to `padded` rows. */
function zeroPadded(y: Float64Array, count: number, padded: number, cols: number): Float64Array {
  const out = new Float64Array(padded * cols);
  out.set(y.subarray(0, count * cols));
  return out;
}

/**
 * H_u D H_w with D the rows x cols "diagonal" holding s and H_u, H_w random Householder
 * reflections (orthogonal): singular values s, built in O(rows * cols) so large sizes are cheap.
 */
function reflectedDiagonal(rows: number, cols: number, s: readonly number[], rng: Rng): { rows: number; cols: number; data: Float64Array } {
  const unit = (length: number): Float64Array => {
    const v = Float64Array.from({ length }, () => rng.normal());
    let norm = 0;
    for (const x of v) norm += x * x;
    return v.map((x) => x / Math.sqrt(norm));
  };
  const u = unit(rows);
  const w = unit(cols);
  // (I - 2uu^T) D (I - 2ww^T) = D - 2 u (D^T u)^T - 2 (D w) w^T + 4 (u^T D w) u w^T
  const dtu = Float64Array.from({ length: cols }, (_, j) => (j < rows ? s[j]! * u[j]! : 0));
  const dw = Float64Array.from({ length: rows }, (_, i) => (i < cols ? s[i]! * w[i]! : 0));
  let udw = 0;
  for (let i = 0; i < Math.min(rows, cols); i++) udw += u[i]! * s[i]! * w[i]!;
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const diagonal = i === j ? s[i]! : 0;
      data[i * cols + j] = diagonal - 2 * u[i]! * dtu[j]! - 2 * dw[i]! * w[j]! + 4 * udw * u[i]! * w[j]!;
    }
  }
  return { rows, cols, data };
}

describe('singularValues: WebAssembly and TypeScript kernels agree', () => {
  const shapes: Array<[number, number]> = [
    [48, 48],
    [61, 45],
    [45, 61],
    [300, 70],
    [257, 200],
    [130, 129],
  ];

  it.each(shapes)('%i x %i: default tunings within 1e-12 * s_max, the same tuning bit-identical', (rows, cols) => {
    const data = drawMatrix({ kind: 'normal', std: 1 }, rows, cols, `agree ${rows}x${cols}`);
    const matrix = { rows, cols, data };
    const ts = singularValues(matrix, { kernels: 'typescript' });
    const wasm = singularValues(matrix, { kernels: 'wasm-simd' });
    expect(relativeDifference(wasm, ts)).toBeLessThan(1e-12);
    const tuning = { bandWidth: 8, qrBlockWidth: 16, qrFirstRatio: 5 / 3 };
    expect(Array.from(singularValuesTuned(matrix, tuning, { kernels: 'wasm-simd' }))).toEqual(
      Array.from(singularValuesTuned(matrix, tuning, { kernels: 'typescript' })),
    );
  });

  it('stays right when the kernels\' memory is reused by a smaller, then grown for a larger, matrix', () => {
    const rng = new Rng('reuse');
    // The last shape needs more memory than any earlier test in this file.
    for (const [rows, cols] of [[200, 180], [20, 17], [33, 40], [640, 480]] as const) {
      const s = Array.from({ length: Math.min(rows, cols) }, () => 0.5 + rng.uniform());
      const matrix = reflectedDiagonal(rows, cols, s, rng);
      const sorted = [...s].sort((x, y) => y - x);
      expect(relativeDifference(singularValues(matrix, { kernels: 'wasm-simd' }), sorted)).toBeLessThan(1e-10);
    }
  });

  it('uses the TypeScript kernels under ZEROLM_NO_WASM=1, and rejects an unknown kernel name', () => {
    const saved = process.env['ZEROLM_NO_WASM'];
    try {
      process.env['ZEROLM_NO_WASM'] = '1';
      expect(defaultProductKernels()).toEqual({ kernels: 'typescript', reason: 'ZEROLM_NO_WASM=1 is set' });
      const data = drawMatrix({ kind: 'normal', std: 1 }, 30, 20, 'env');
      expect(relativeDifference(singularValues({ rows: 30, cols: 20, data }), singularValues({ rows: 30, cols: 20, data }, { kernels: 'typescript' }))).toBe(0);
    } finally {
      if (saved === undefined) delete process.env['ZEROLM_NO_WASM'];
      else process.env['ZEROLM_NO_WASM'] = saved;
    }
    const matrix = { rows: 2, cols: 2, data: Float64Array.of(1, 0, 0, 1) };
    expect(() => singularValues(matrix, { kernels: 'gpu' as never })).toThrow(/kernels must be 'auto', 'wasm-simd' or 'typescript', got gpu/);
  });
});

describe('subtractMatrixProduct (plain arrays, for callers outside the reduction)', () => {
  /** C -= P Q the plain way, in the same index order. */
  function naive(c: Float64Array, cOffset: number, ldc: number, rows: number, cols: number, pt: Float64Array, ptOffset: number, ldpt: number, depth: number, q: Float64Array, qOffset: number, ldq: number): void {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let sum = 0;
        for (let k = 0; k < depth; k++) sum += pt[ptOffset + k * ldpt + i]! * q[qOffset + k * ldq + j]!;
        c[cOffset + i * ldc + j] -= sum;
      }
    }
  }

  function withKernels<T>(noWasm: boolean, run: () => T): T {
    const saved = process.env['ZEROLM_NO_WASM'];
    try {
      if (noWasm) process.env['ZEROLM_NO_WASM'] = '1';
      else delete process.env['ZEROLM_NO_WASM'];
      return run();
    } finally {
      if (saved === undefined) delete process.env['ZEROLM_NO_WASM'];
      else process.env['ZEROLM_NO_WASM'] = saved;
    }
  }

  // Shapes with edge rows and columns, a depth past one slice (256), offsets and wider strides;
  // the first ones are below the size that goes to WebAssembly.
  const shapes = [
    { rows: 3, cols: 5, depth: 2 },
    { rows: 9, cols: 7, depth: 300 },
    { rows: 70, cols: 65, depth: 257 },
    { rows: 128, cols: 96, depth: 64 },
  ];
  it.each(shapes)('matches the plain product at $rows x $cols x $depth, identically with both kernels', ({ rows, cols, depth }) => {
    const rng = new Rng(rows * 1000 + cols);
    const ldc = cols + 3;
    const ldpt = rows + 2;
    const ldq = cols + 1;
    const [cOffset, ptOffset, qOffset] = [5, 7, 11];
    const random = (length: number) => Float64Array.from({ length }, () => rng.normal());
    const c = random(cOffset + rows * ldc);
    const pt = random(ptOffset + depth * ldpt);
    const q = random(qOffset + depth * ldq);
    const expected = Float64Array.from(c);
    naive(expected, cOffset, ldc, rows, cols, pt, ptOffset, ldpt, depth, q, qOffset, ldq);
    const results = [false, true].map((noWasm) =>
      withKernels(noWasm, () => {
        const out = Float64Array.from(c);
        subtractMatrixProduct(out, cOffset, ldc, rows, cols, pt, ptOffset, ldpt, depth, q, qOffset, ldq);
        return out;
      }),
    );
    expect(relativeDifference(results[0]!, expected)).toBeLessThan(1e-13);
    expect(Array.from(results[0]!)).toEqual(Array.from(results[1]!));
    // Entries outside the block are untouched.
    for (let i = 0; i < cOffset; i++) expect(results[0]![i]).toBe(c[i]);
    for (let i = 0; i < rows; i++) for (let j = cols; j < ldc && cOffset + i * ldc + j < c.length; j++) expect(results[0]![cOffset + i * ldc + j]).toBe(c[cOffset + i * ldc + j]);
  });
});
