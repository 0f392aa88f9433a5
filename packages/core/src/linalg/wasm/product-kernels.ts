/**
 * WebAssembly SIMD (f64x2) versions of the three tile kernels of `block-products.ts`, emitted as
 * bytes by `encoder.ts` and compiled once when this module loads. Each kernel is the TypeScript
 * loop nest of the same name with the 4 x 4 block of sums held in eight f64x2 accumulators
 * (two lanes = two neighbouring outputs): per inner step it loads four contiguous numbers of one
 * operand as two vectors, broadcasts ("splats") each of four numbers of the other operand into
 * both lanes, and does eight f64x2 multiplies and eight adds. V8 compiles those to SSE/AVX
 * instructions with no bounds checks (guard pages catch stray accesses) and keeps all eleven
 * vectors in registers, which the scalar JavaScript cannot (16 accumulators plus 8 operands),
 * so the kernels run 3-5 times as fast as the TypeScript loops, close to what 128-bit vectors
 * allow (two f64x2 multiplies and two adds per cycle on the AMD Zen 4 they were tuned on; a
 * fused multiply-add would not raise that, and would change the rounding).
 *
 * Multiplies and adds stay separate (no relaxed-SIMD fused multiply-add) and every sum runs
 * over its inner index in the same order as the TypeScript loop, so results are bit-identical.
 *
 * The kernels read and write only their linear memory, so a reduction that uses them keeps all
 * its arrays there: `openWasmArena` hands out views on that memory (grown before any view is
 * made, since growing detaches the old buffer). Copying each trailing matrix in and out per
 * product instead would move as many bytes as the product itself reads (each is only rank 4-16).
 */

import type { ProductArena, TileKernels } from '../block-products';
import { encodeModule, FunctionWriter, I32, V128, type Local } from './encoder';

/** The slice of the WebAssembly JavaScript API used here (the project compiles without DOM types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
}

type Kernel = (...args: number[]) => void;

const PAGE_BYTES = 65536;
/** Rows (or columns) of the long operand per pass, as in the TypeScript loops (L1-sized strips). */
const CHUNK = 192;
/** Linear memory up to this size is kept for later calls; a larger one is made for one call only. */
const RETAINED_BYTES = 256 * 1024 * 1024;
/** Addresses stay below 2^31 so that i32 arithmetic on them never depends on signedness. */
const MAX_BYTES = 2 ** 31 - PAGE_BYTES;

/** acc += x * b for f64x2 locals. */
function multiplyAdd(f: FunctionWriter, acc: Local, x: Local, b: Local): void {
  f.get(acc).get(x).get(b).f64x2Mul().f64x2Add().set(acc);
}

/** Pushes `base + multiples[j]` where multiples[0] is 0 (no add) and the others are locals. */
function offsetAddress(f: FunctionWriter, base: Local, multiples: readonly (Local | 0)[], j: number): void {
  f.get(base);
  const step = multiples[j]!;
  if (step !== 0) f.get(step).i32Add();
}

/** The 4 x 2 accumulators acc[j][h]: row j of the tile, lanes 2h and 2h + 1 of its 4 columns. */
function accumulators(f: FunctionWriter): Local[][] {
  return [0, 1, 2, 3].map(() => [f.local(V128), f.local(V128)]);
}

/** locals ld2 = 2 * ld and ld3 = 3 * ld, for addressing the 4 rows of a tile. */
function rowSteps(f: FunctionWriter, ld: Local): [0, Local, Local, Local] {
  const ld2 = f.local(I32);
  const ld3 = f.local(I32);
  f.get(ld).i32(2).i32Mul().set(ld2);
  f.get(ld).i32(3).i32Mul().set(ld3);
  return [0, ld, ld2, ld3];
}

/** count = min(chunk, limit - start). */
function chunkLength(f: FunctionWriter, count: Local, chunk: Local, limit: Local, start: Local): void {
  f.get(limit).get(start).i32Sub().set(count);
  f.get(chunk).get(count).get(chunk).get(count).i32LtS().select().set(count);
}

/**
 * transposeTimesTiles(vt, ldv8, count, a, lda8, rows, fullCols, out, ldo8, chunk), byte
 * addresses and byte strides: out[r][c] += sum_i vt[r][i] * a[i][c].
 */
function transposeTimesKernel(): FunctionWriter {
  const f = new FunctionWriter('transposeTimesTiles', [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const [vt, ldv8, count, a, lda8, rows, fullCols, out, ldo8, chunk] = f.params as [Local, Local, Local, Local, Local, Local, Local, Local, Local, Local];
  const [i0, n, c, r, k, po, pa, px] = [0, 1, 2, 3, 4, 5, 6, 7].map(() => f.local(I32)) as [Local, Local, Local, Local, Local, Local, Local, Local];
  const vtRows = rowSteps(f, ldv8);
  const outRows = rowSteps(f, ldo8);
  const acc = accumulators(f);
  const b = [f.local(V128), f.local(V128)] as const;
  const x = f.local(V128);

  // Row chunks of A (as in the TypeScript loop), so one 4-column strip of the chunk stays in L1
  // while every 4-row block of V^T passes over it.
  f.forRange(i0, 0, rows, chunk, () => {
    chunkLength(f, n, chunk, rows, i0);
    f.forRange(c, 0, fullCols, 4, () => {
      f.forRange(r, 0, count, 4, () => {
        // po = &out[r][c]; the tile's running sums start from what earlier chunks left there.
        f.get(out).get(r).get(ldo8).i32Mul().i32Add().get(c).i32(3).i32Shl().i32Add().set(po);
        for (let j = 0; j < 4; j++) {
          for (let h = 0; h < 2; h++) {
            offsetAddress(f, po, outRows, j);
            f.v128Load(16 * h).set(acc[j]![h]!);
          }
        }
        // px = &vt[r][i0], pa = &a[i0][c].
        f.get(vt).get(r).get(ldv8).i32Mul().i32Add().get(i0).i32(3).i32Shl().i32Add().set(px);
        f.get(a).get(i0).get(lda8).i32Mul().i32Add().get(c).i32(3).i32Shl().i32Add().set(pa);
        f.get(n).set(k);
        // One row i of the chunk per step: a[i][c..c+3] as two vectors, vt[r+j][i] splatted.
        f.countDown(k, () => {
          f.get(pa).v128Load(0).set(b[0]);
          f.get(pa).v128Load(16).set(b[1]);
          for (let j = 0; j < 4; j++) {
            offsetAddress(f, px, vtRows, j);
            f.v128Load64Splat().set(x);
            multiplyAdd(f, acc[j]![0]!, x, b[0]);
            multiplyAdd(f, acc[j]![1]!, x, b[1]);
          }
          f.increment(pa, lda8).increment(px, 8);
        });
        for (let j = 0; j < 4; j++) {
          for (let h = 0; h < 2; h++) {
            offsetAddress(f, po, outRows, j);
            f.get(acc[j]![h]!).v128Store(16 * h);
          }
        }
      });
    });
  });
  return f;
}

/**
 * subtractProductTiles(c, ldc8, fullRows, strips, pt, ldpt8, depth, qPacked):
 * C[i][4s + j] -= sum_k pt[k][i] * qPacked(strip s)[k][j], all k < depth (the reflector block
 * width: a short sum, so the tile's C load and store weigh more here than in the other two).
 */
function subtractProductKernel(): FunctionWriter {
  const f = new FunctionWriter('subtractProductTiles', [I32, I32, I32, I32, I32, I32, I32, I32]);
  const [c, ldc8, fullRows, strips, pt, ldpt8, depth, qPacked] = f.params as [Local, Local, Local, Local, Local, Local, Local, Local];
  const [i, s, k, po, pq, pp] = [0, 1, 2, 3, 4, 5].map(() => f.local(I32)) as [Local, Local, Local, Local, Local, Local];
  const cRows = rowSteps(f, ldc8);
  const acc = accumulators(f);
  const b = [f.local(V128), f.local(V128)] as const;
  const x = f.local(V128);

  // For each 4-row block of C, walk along its 4-column strips; the packed Q strips follow one
  // another, so pq runs through all of qPacked once per row block.
  f.forRange(i, 0, fullRows, 4, () => {
    f.get(c).get(i).get(ldc8).i32Mul().i32Add().set(po);
    f.get(qPacked).set(pq);
    f.forRange(s, 0, strips, 1, () => {
      for (const row of acc) for (const v of row) f.f64x2Zero().set(v);
      // pp = &pt[0][i]: the four P entries of step k are contiguous (P is stored transposed).
      f.get(pt).get(i).i32(3).i32Shl().i32Add().set(pp);
      f.get(depth).set(k);
      f.countDown(k, () => {
        f.get(pq).v128Load(0).set(b[0]);
        f.get(pq).v128Load(16).set(b[1]);
        for (let j = 0; j < 4; j++) {
          f.get(pp).v128Load64Splat(8 * j).set(x);
          multiplyAdd(f, acc[j]![0]!, x, b[0]);
          multiplyAdd(f, acc[j]![1]!, x, b[1]);
        }
        f.increment(pq, 32).increment(pp, ldpt8);
      });
      // C tile -= sums, row by row (po = &C[i][4s]).
      for (let j = 0; j < 4; j++) {
        for (let h = 0; h < 2; h++) {
          offsetAddress(f, po, cRows, j);
          offsetAddress(f, po, cRows, j);
          f.v128Load(16 * h).get(acc[j]![h]!).f64x2Sub().v128Store(16 * h);
        }
      }
      f.increment(po, 32);
    });
  });
  return f;
}

/**
 * timesTransposedTiles(a, lda8, fullRows, cols, yPacked, strips, out, ldo8, chunk):
 * out[4s + j][i] += sum_k a[i][k] * yPacked(strip s)[k][j]. The sums are kept transposed in the
 * accumulators, acc[j][h] = (out[4s + 2h][i + j], out[4s + 2h + 1][i + j]), so that each step
 * splats a[i + j][k] against the packed Y vectors; 2 x 2 lane shuffles move the tile between
 * that form and out's rows on entry and exit.
 */
function timesTransposedKernel(): FunctionWriter {
  const f = new FunctionWriter('timesTransposedTiles', [I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const [a, lda8, fullRows, cols, yPacked, strips, out, ldo8, chunk] = f.params as [Local, Local, Local, Local, Local, Local, Local, Local, Local];
  const [k0, n, i, s, k, po, py, pa, stripBytes, outStrip] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(() => f.local(I32)) as [
    Local, Local, Local, Local, Local, Local, Local, Local, Local, Local,
  ];
  const aRows = rowSteps(f, lda8);
  const outRows = rowSteps(f, ldo8);
  const acc = accumulators(f);
  const b = [f.local(V128), f.local(V128)] as const;
  const x = f.local(V128);
  f.get(cols).i32(5).i32Shl().set(stripBytes); // one packed strip: cols x 4 doubles
  f.get(ldo8).i32(2).i32Shl().set(outStrip); // 4 rows of out

  // Column chunks of A, so each packed Y strip's chunk stays in L1 while every 4-row block of A
  // passes over it.
  f.forRange(k0, 0, cols, chunk, () => {
    chunkLength(f, n, chunk, cols, k0);
    f.forRange(i, 0, fullRows, 4, () => {
      // po = &out[0][i], py = &yPacked(strip 0)[k0].
      f.get(out).get(i).i32(3).i32Shl().i32Add().set(po);
      f.get(yPacked).get(k0).i32(5).i32Shl().i32Add().set(py);
      f.forRange(s, 0, strips, 1, () => {
        // Load the 4 x 4 tile of out (rows 4s.., columns i..i+3) and transpose its 2 x 2 blocks.
        for (let h = 0; h < 2; h++) {
          for (let half = 0; half < 2; half++) {
            offsetAddress(f, po, outRows, 2 * h);
            f.v128Load(16 * half).set(b[0]);
            offsetAddress(f, po, outRows, 2 * h + 1);
            f.v128Load(16 * half).set(b[1]);
            f.get(b[0]).get(b[1]).f64x2Shuffle(0, 2).set(acc[2 * half]![h]!);
            f.get(b[0]).get(b[1]).f64x2Shuffle(1, 3).set(acc[2 * half + 1]![h]!);
          }
        }
        // pa = &a[i][k0]; one column k of the chunk per step.
        f.get(a).get(i).get(lda8).i32Mul().i32Add().get(k0).i32(3).i32Shl().i32Add().set(pa);
        f.get(n).set(k);
        f.countDown(k, () => {
          f.get(py).v128Load(0).set(b[0]);
          f.get(py).v128Load(16).set(b[1]);
          for (let j = 0; j < 4; j++) {
            offsetAddress(f, pa, aRows, j);
            f.v128Load64Splat().set(x);
            multiplyAdd(f, acc[j]![0]!, x, b[0]);
            multiplyAdd(f, acc[j]![1]!, x, b[1]);
          }
          f.increment(py, 32).increment(pa, 8);
        });
        // Transpose back and store rows 4s + 2h (lanes 0) and 4s + 2h + 1 (lanes 1).
        for (let h = 0; h < 2; h++) {
          for (let half = 0; half < 2; half++) {
            const left = acc[2 * half]![h]!;
            const right = acc[2 * half + 1]![h]!;
            offsetAddress(f, po, outRows, 2 * h);
            f.get(left).get(right).f64x2Shuffle(0, 2).v128Store(16 * half);
            offsetAddress(f, po, outRows, 2 * h + 1);
            f.get(left).get(right).f64x2Shuffle(1, 3).v128Store(16 * half);
          }
        }
        // The strip's chunk was consumed (py advanced n steps); move to the next strip's.
        f.get(py).get(stripBytes).i32Add().get(n).i32(5).i32Shl().i32Sub().set(py);
        f.increment(po, outStrip);
      });
    });
  });
  return f;
}

/** The module's bytes: the three kernels, importing `env.memory`. */
export function productKernelBytes(): Uint8Array {
  return encodeModule([transposeTimesKernel(), subtractProductKernel(), timesTransposedKernel()]);
}

interface CompiledKernels {
  readonly api: WasmApi;
  readonly module: object;
}

/** Compiles the kernels, or says why they cannot run here. */
function compileKernels(): CompiledKernels | string {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) return 'WebAssembly is not available';
  try {
    const bytes = productKernelBytes();
    if (!api.validate(bytes)) return 'WebAssembly SIMD (f64x2) is not supported';
    return { api, module: new api.Module(bytes) };
  } catch (error) {
    return `the WebAssembly kernels failed to compile (${error instanceof Error ? error.message : String(error)})`;
  }
}

const compiled = compileKernels();

/** Whether the WebAssembly SIMD kernels can run in this process, and if not, why. */
export function wasmSimdSupport(): { readonly available: true } | { readonly available: false; readonly reason: string } {
  return typeof compiled === 'string' ? { available: false, reason: compiled } : { available: true };
}

/** A memory with the kernels bound to it. */
interface KernelInstance {
  readonly memory: WasmMemory;
  readonly tiles: TileKernels;
}

function instantiate(kernels: CompiledKernels, bytes: number): KernelInstance {
  const memory = new kernels.api.Memory({ initial: Math.ceil(bytes / PAGE_BYTES) });
  const exports = new kernels.api.Instance(kernels.module, { env: { memory } }).exports;
  const transposeTimesTiles = exports['transposeTimesTiles'] as Kernel;
  const subtractProductTiles = exports['subtractProductTiles'] as Kernel;
  const timesTransposedTiles = exports['timesTransposedTiles'] as Kernel;
  const address = (array: Float64Array, offset: number): number => {
    if (array.buffer !== memory.buffer) throw new Error('wasm-simd tile kernels: an array is not a view on the kernels\' memory');
    return array.byteOffset + 8 * offset;
  };
  const tiles: TileKernels = {
    name: 'wasm-simd',
    transposeTimesTiles(vt, ldv, count, a, aOffset, lda, rows, fullCols, out, ldo) {
      transposeTimesTiles(address(vt, 0), 8 * ldv, count, address(a, aOffset), 8 * lda, rows, fullCols, address(out, 0), 8 * ldo, CHUNK);
    },
    subtractProductTiles(c, cOffset, ldc, fullRows, strips, pt, ldpt, depth, qPacked) {
      subtractProductTiles(address(c, cOffset), 8 * ldc, fullRows, strips, address(pt, 0), 8 * ldpt, depth, address(qPacked, 0));
    },
    timesTransposedTiles(a, aOffset, lda, fullRows, cols, yPacked, strips, out, ldo) {
      timesTransposedTiles(address(a, aOffset), 8 * lda, fullRows, cols, address(yPacked, 0), strips, address(out, 0), 8 * ldo, CHUNK);
    },
  };
  return { memory, tiles };
}

/** The instance kept between calls (its memory only grows). */
let retained: KernelInstance | undefined;

/** Bytes `take` may add to keep each array 16-byte aligned. */
const ALIGNMENT_SLACK = 16;

/**
 * A `ProductArena` whose arrays are views on the kernels' linear memory, with room for arrays of
 * `lengths` doubles (the memory is grown first, so the views stay valid); undefined
 * when the kernels are unavailable or the memory cannot be had (the caller then uses plain
 * arrays and the TypeScript tiles). The arrays are only valid until the next call.
 */
export function openWasmArena(lengths: readonly number[]): ProductArena | undefined {
  if (typeof compiled === 'string') return undefined;
  let bytes = 0;
  for (const length of lengths) bytes += 8 * length + ALIGNMENT_SLACK;
  if (bytes > MAX_BYTES) return undefined;
  let instance: KernelInstance;
  try {
    if (bytes > RETAINED_BYTES) {
      instance = instantiate(compiled, bytes);
    } else {
      if (retained === undefined) retained = instantiate(compiled, bytes);
      const missing = bytes - retained.memory.buffer.byteLength;
      if (missing > 0) retained.memory.grow(Math.ceil(missing / PAGE_BYTES));
      instance = retained;
    }
  } catch {
    return undefined; // no memory of that size (RangeError): plain arrays will do
  }
  const { memory, tiles } = instance;
  let next = 0;
  return {
    tiles,
    take(length: number): Float64Array {
      const start = (next + 15) & ~15;
      if (start + 8 * length > bytes) {
        throw new Error(`wasm arena: ${length} more doubles exceed the ${bytes} bytes reserved for arrays of ${lengths.join(', ')} doubles`);
      }
      next = start + 8 * length;
      return new Float64Array(memory.buffer, start, length).fill(0);
    },
  };
}
