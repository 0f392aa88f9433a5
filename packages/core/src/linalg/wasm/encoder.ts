/**
 * A small encoder for WebAssembly binary modules: just what the SIMD product kernels in
 * `product-kernels.ts` need (i32 and v128 locals, blocks and loops, i32 arithmetic, v128
 * loads and stores, f64x2 arithmetic, one imported memory, exported functions). It lets the
 * kernels be written in TypeScript and compiled at load time with no toolchain outside this
 * repository. Reference: the WebAssembly core specification 2.0, binary format (chapter 5), which
 * includes the fixed-width SIMD instructions (prefix 0xfd).
 */

/** Value types, by their binary code. */
export const I32 = 0x7f;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof V128;

/** Opcodes without immediates (core) and with the 0xfd prefix (SIMD), by name. */
const OP = {
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32LtS: 0x48,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  select: 0x1b,
  simdPrefix: 0xfd,
} as const;

const SIMD = {
  v128Load: 0x00,
  v128Load64Splat: 0x0a,
  v128Store: 0x0b,
  v128Const: 0x0c,
  i8x16Shuffle: 0x0d,
  f64x2Add: 0xf0,
  f64x2Sub: 0xf1,
  f64x2Mul: 0xf2,
} as const;

/** Block type "no result" (the only one the kernels use). */
const EMPTY_BLOCK = 0x40;

function unsignedLeb(value: number, out: number[]): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`wasm encoder: ${value} is not a u32`);
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
}

function signedLeb(value: number, out: number[]): void {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) throw new Error(`wasm encoder: ${value} is not an i32`);
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return;
  }
}

/** An import or export name (ASCII is all the kernels use). */
function name(text: string, out: number[]): void {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error(`wasm encoder: name ${JSON.stringify(text)} is not printable ASCII`);
  unsignedLeb(text.length, out);
  for (let i = 0; i < text.length; i++) out.push(text.charCodeAt(i));
}

/** A local variable of the function being written (parameters come first). */
export interface Local {
  readonly index: number;
  readonly type: ValueType;
}

/**
 * The body of one function, written as a sequence of stack-machine instructions. Each method
 * appends one instruction and returns `this`, so code reads left to right in evaluation order:
 * `f.get(a).get(b).i32Add().set(c)` is `c = a + b`.
 */
export class FunctionWriter {
  private readonly code: number[] = [];
  private readonly localTypes: ValueType[] = [];
  readonly params: Local[];

  constructor(
    readonly exportName: string,
    paramTypes: readonly ValueType[],
  ) {
    this.params = paramTypes.map((type, index) => ({ index, type }));
  }

  /** Declares a new local of `type` (zero-initialised by WebAssembly on every call). */
  local(type: ValueType): Local {
    const local = { index: this.params.length + this.localTypes.length, type };
    this.localTypes.push(type);
    return local;
  }

  get(local: Local): this {
    return this.op(OP.localGet).u32(local.index);
  }

  set(local: Local): this {
    return this.op(OP.localSet).u32(local.index);
  }

  tee(local: Local): this {
    return this.op(OP.localTee).u32(local.index);
  }

  i32(value: number): this {
    this.code.push(OP.i32Const);
    signedLeb(value, this.code);
    return this;
  }

  i32Add(): this {
    return this.op(OP.i32Add);
  }

  i32Sub(): this {
    return this.op(OP.i32Sub);
  }

  i32Mul(): this {
    return this.op(OP.i32Mul);
  }

  i32Shl(): this {
    return this.op(OP.i32Shl);
  }

  /** Pops c, b, a and pushes c !== 0 ? a : b. */
  select(): this {
    return this.op(OP.select);
  }


  i32LtS(): this {
    return this.op(OP.i32LtS);
  }




  /** `local += value` for an i32 local and an i32 local or constant. */
  increment(local: Local, by: Local | number): this {
    this.get(local);
    if (typeof by === 'number') this.i32(by);
    else this.get(by);
    return this.i32Add().set(local);
  }

  /** Loads 16 bytes at (address on the stack) + offset. */
  v128Load(offset = 0): this {
    return this.simd(SIMD.v128Load).memarg(3, offset);
  }

  /** Loads the f64 at (address on the stack) + offset into both lanes. */
  v128Load64Splat(offset = 0): this {
    return this.simd(SIMD.v128Load64Splat).memarg(3, offset);
  }

  /** Stores the v128 on top of the stack at (address below it) + offset. */
  v128Store(offset = 0): this {
    return this.simd(SIMD.v128Store).memarg(4, offset);
  }

  /** Pushes a v128 of two zero f64 lanes. */
  f64x2Zero(): this {
    this.simd(SIMD.v128Const);
    for (let i = 0; i < 16; i++) this.code.push(0);
    return this;
  }

  f64x2Add(): this {
    return this.simd(SIMD.f64x2Add);
  }

  f64x2Sub(): this {
    return this.simd(SIMD.f64x2Sub);
  }

  f64x2Mul(): this {
    return this.simd(SIMD.f64x2Mul);
  }

  /**
   * [x, y] from two f64x2 operands a (below) and b (top): `lane` 0..3 picks a[0], a[1], b[0],
   * b[1] (i8x16.shuffle with whole 8-byte lanes).
   */
  f64x2Shuffle(first: 0 | 1 | 2 | 3, second: 0 | 1 | 2 | 3): this {
    this.simd(SIMD.i8x16Shuffle);
    for (const lane of [first, second]) for (let b = 0; b < 8; b++) this.code.push(lane * 8 + b);
    return this;
  }

  /** `loop ... end`: `br 0` inside jumps back to the start. */
  loop(body: () => void): this {
    this.code.push(OP.loop, EMPTY_BLOCK);
    body();
    return this.op(OP.end);
  }

  /** `if ... end` on the i32 on the stack. */
  if(body: () => void): this {
    this.code.push(OP.if, EMPTY_BLOCK);
    body();
    return this.op(OP.end);
  }

  brIf(depth: number): this {
    return this.op(OP.brIf).u32(depth);
  }

  /**
   * `for (counter = from; counter < limit; counter += step) body()` (signed comparison), where
   * `from` and `step` are locals or constants: a guard, then a loop that tests at its bottom.
   */
  forRange(counter: Local, from: Local | number, limit: Local, step: Local | number, body: () => void): this {
    this.operand(from).set(counter);
    this.get(counter).get(limit).i32LtS();
    return this.if(() => {
      this.loop(() => {
        body();
        this.increment(counter, step);
        this.get(counter).get(limit).i32LtS().brIf(0);
      });
    });
  }

  /** `do body() while (--counter > 0)`, for a counter known to be positive. */
  countDown(counter: Local, body: () => void): this {
    return this.loop(() => {
      body();
      this.get(counter).i32(1).i32Sub().tee(counter).brIf(0);
    });
  }

  /** The function body as the code section encodes it (locals, instructions, end), with its size. */
  encodeBody(): number[] {
    const body: number[] = [];
    const runs: Array<[number, ValueType]> = [];
    for (const type of this.localTypes) {
      const last = runs[runs.length - 1];
      if (last && last[1] === type) last[0]++;
      else runs.push([1, type]);
    }
    unsignedLeb(runs.length, body);
    for (const [count, type] of runs) {
      unsignedLeb(count, body);
      body.push(type);
    }
    body.push(...this.code, OP.end);
    const sized: number[] = [];
    unsignedLeb(body.length, sized);
    return sized.concat(body);
  }

  /** Function type: the parameter types, no results. */
  encodeType(): number[] {
    const out = [0x60];
    unsignedLeb(this.params.length, out);
    for (const p of this.params) out.push(p.type);
    out.push(0);
    return out;
  }

  private operand(value: Local | number): this {
    return typeof value === 'number' ? this.i32(value) : this.get(value);
  }

  private op(code: number): this {
    this.code.push(code);
    return this;
  }

  private simd(code: number): this {
    this.code.push(OP.simdPrefix);
    unsignedLeb(code, this.code);
    return this;
  }

  private u32(value: number): this {
    unsignedLeb(value, this.code);
    return this;
  }

  /** Memory argument: log2 of the alignment the access promises (a hint only), then the offset. */
  private memarg(alignLog2: number, offset: number): this {
    return this.u32(alignLog2).u32(offset);
  }
}

function section(id: number, content: number[], out: number[]): void {
  out.push(id);
  unsignedLeb(content.length, out);
  for (const b of content) out.push(b);
}

/**
 * A module that imports one memory as `env.memory` (at least `minPages` 64 KiB pages) and
 * exports each function under its name. Every function gets its own type entry.
 */
export function encodeModule(functions: readonly FunctionWriter[], minPages = 1): Uint8Array {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

  const types: number[] = [];
  unsignedLeb(functions.length, types);
  for (const f of functions) types.push(...f.encodeType());
  section(1, types, out);

  const imports: number[] = [];
  unsignedLeb(1, imports);
  name('env', imports);
  name('memory', imports);
  imports.push(0x02, 0x00); // memory, limits with a minimum only
  unsignedLeb(minPages, imports);
  section(2, imports, out);

  const declarations: number[] = [];
  unsignedLeb(functions.length, declarations);
  functions.forEach((_, index) => unsignedLeb(index, declarations));
  section(3, declarations, out);

  const exports: number[] = [];
  unsignedLeb(functions.length, exports);
  functions.forEach((f, index) => {
    name(f.exportName, exports);
    exports.push(0x00); // function
    unsignedLeb(index, exports);
  });
  section(7, exports, out);

  const code: number[] = [];
  unsignedLeb(functions.length, code);
  for (const f of functions) code.push(...f.encodeBody());
  section(10, code, out);

  return Uint8Array.from(out);
}
