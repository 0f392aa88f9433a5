/**
 * The weight-format codecs against their definitions and against onnxruntime: 8-bit linear
 * quantization (onnxruntime's formulas), MatMulNBits and MatMulBnb4 packing, block-exact slicing
 * (slicing the stored tensors gives the bytes quantizing the sliced weight gives), and every
 * converted format run by onnxruntime on the identity computing what `resolveMatMulWeight` reads.
 */
import { Rng } from '@zerolm/core';
import * as ort from 'onnxruntime-node';
import {
  bnb4SliceIsExact,
  convertGraph,
  DataType,
  dequantizeBnb4,
  dequantizeNBits,
  encodeModel,
  GraphIndex,
  lazyGraphOf,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  modelOfLazyGraph,
  NF4_TABLE,
  quantizeBnb4,
  quantizeLinear8,
  quantizeNBits,
  resolveMatMulWeight,
  sliceBnb4,
  sliceNBits,
  transposeLastTwo,
  wholeBlocks,
  WEIGHT_FORMATS,
  type ModelProto,
} from '../src';
import { randomFloats } from './helpers';

function columns(weight: Float32Array, k: number, n: number, cols: readonly number[]): Float32Array {
  const out = new Float32Array(k * cols.length);
  for (let r = 0; r < k; r++) cols.forEach((c, j) => (out[r * cols.length + j] = weight[r * n + c]!));
  return out;
}

function rows(weight: Float32Array, n: number, kept: readonly number[]): Float32Array {
  const out = new Float32Array(kept.length * n);
  kept.forEach((r, i) => out.set(weight.subarray(r * n, (r + 1) * n), i * n));
  return out;
}

describe('8-bit linear quantization (onnxruntime quant_utils)', () => {
  it('int8 symmetric: scale max|x| / 127, zero point 0, round half to even', () => {
    const r = quantizeLinear8(Float32Array.of(0, 1, -2, 0.5, 2), [5], { type: 'int8', symmetric: true, reduceRange: false });
    expect(r.scales[0]).toBe(Math.fround(4 / 254));
    expect(Array.from(r.zeroPoints)).toEqual([0]);
    expect(Array.from(r.quantized)).toEqual([0, 64, -127, 32, 127]);
  });
  it('uint8 asymmetric: range widened to hold 0, zero point round(-rmin / scale)', () => {
    const r = quantizeLinear8(Float32Array.of(1, 2, 3), [3], { type: 'uint8', symmetric: false, reduceRange: false });
    expect(r.scales[0]).toBe(Math.fround(3 / 255));
    expect(r.zeroPoints[0]).toBe(0);
    expect(r.quantized[2]).toBe(255);
    const s = quantizeLinear8(Float32Array.of(-1, 0.5, 3), [3], { type: 'uint8', symmetric: false, reduceRange: false });
    expect(s.zeroPoints[0]).toBe(Math.round(255 / 4)); // 63.75 -> 64
  });
  it('reduced range and per channel', () => {
    const w = Float32Array.of(1, -8, 2, 4, 0.5, -1); // [3, 2]
    const r = quantizeLinear8(w, [3, 2], { type: 'int8', symmetric: true, reduceRange: true, axis: 1 });
    expect(Array.from(r.scales)).toEqual([Math.fround(2 / 64), Math.fround(8 / 64)]);
    expect(Array.from(r.quantized)).toEqual([32, -64, 64, 32, 16, -8]);
    expect(quantizeLinear8(new Float32Array(4), [4], { type: 'int8', symmetric: true, reduceRange: false }).scales[0]).toBe(1);
  });
});

describe('MatMulNBits packing', () => {
  it('symmetric blocks: scale = signed extreme / -8, codes low nibble first, zero point 8', () => {
    const k = 40; // two blocks, the second padded
    const weight = new Float32Array(k); // one column
    weight[0] = 8; weight[1] = -4; weight[2] = 1; weight[33] = -2;
    const q = quantizeNBits(weight, { k, n: 1, bits: 4, blockSize: 32 });
    expect(Array.from(q.scales)).toEqual([-1, 0.25]);
    expect(q.zeroPoints).toBeUndefined();
    expect(q.packed.length).toBe(2 * 16);
    expect(q.packed[0]).toBe(0 | (12 << 4)); // 8 -> 0, -4 -> 12
    expect(q.packed[1] & 0xf).toBe(7); // 1 -> 7
    expect(q.packed[16]! >> 4).toBe(0); // -2 -> 0 (extreme of the second block)
    expect(Array.from(dequantizeNBits(q, { k, n: 1, bits: 4, blockSize: 32 }), (v) => v + 0)).toEqual(Array.from(weight));
  });
  it('an all-zero block has scale -0 and codes 8; asymmetric blocks pack their zero points', () => {
    const q = quantizeNBits(new Float32Array(32), { k: 32, n: 1, bits: 4, blockSize: 32 });
    expect(Object.is(q.scales[0], -0)).toBe(true);
    expect(q.packed.every((b) => b === 0x88)).toBe(true);
    const w = randomFloats(new Rng('asym'), 96 * 3);
    const a = quantizeNBits(w, { k: 96, n: 3, bits: 4, blockSize: 32 }, false);
    expect(a.zeroPoints!.length).toBe(3 * 2);
    const back = dequantizeNBits(a, { k: 96, n: 3, bits: 4, blockSize: 32 });
    const stored = transposeLastTwo(w, [96, 3]);
    for (let i = 0; i < back.length; i++) expect(Math.abs(back[i]! - stored[i]!)).toBeLessThanOrEqual(Math.abs(a.scales[Math.floor(i / 32)]!) * 0.5 + 1e-6);
  });
  it('slicing columns and whole blocks gives the bytes quantizing the sliced weight gives', () => {
    const shape = { k: 80, n: 6, bits: 4, blockSize: 32 };
    const w = randomFloats(new Rng('slice'), 80 * 6);
    for (const symmetric of [true, false]) {
      const q = quantizeNBits(w, shape, symmetric);
      const cols = [0, 2, 5];
      const keptRows = [...Array.from({ length: 32 }, (_, i) => 32 + i), ...Array.from({ length: 16 }, (_, i) => 64 + i)];
      const blocks = wholeBlocks(keptRows, 80, 32)!;
      expect(blocks).toEqual([1, 2]);
      const sliced = sliceNBits(q, shape, cols, blocks);
      const direct = quantizeNBits(columns(rows(w, 6, keptRows), 48, 6, cols), { ...shape, k: 48, n: 3 }, symmetric);
      expect(sliced.shape).toEqual({ ...shape, k: 48, n: 3 });
      expect(Buffer.from(sliced.tensors.packed).equals(Buffer.from(direct.packed))).toBe(true);
      expect(Array.from(sliced.tensors.scales)).toEqual(Array.from(direct.scales));
      if (!symmetric) expect(Array.from(sliced.tensors.zeroPoints!)).toEqual(Array.from(direct.zeroPoints!));
    }
    expect(wholeBlocks([0, 1, 2], 80, 32)).toBeUndefined();
    expect(wholeBlocks([...Array.from({ length: 16 }, (_, i) => 64 + i)], 80, 32)).toEqual([2]);
    // the short last block may not move before a whole one
    expect(wholeBlocks([...Array.from({ length: 16 }, (_, i) => 64 + i)], 80, 32)?.length).toBe(1);
  });
});

describe('MatMulBnb4 packing', () => {
  it('NF4 codes of W^T, high nibble first, one absmax per block of the flat array', () => {
    const weight = Float32Array.of(2, 0, -1, 1, 0.5, -2); // [K=3, N=2]
    const q = quantizeBnb4(weight, { k: 3, n: 2, blockSize: 16, quantType: 1 });
    expect(Array.from(q.absmax)).toEqual([2]);
    // W^T flat: [2, -1, 0.5, 0, 1, -2] / 2 = [1, -0.5, 0.25, 0, 0.5, -1]
    expect(Array.from(q.packed)).toEqual([(15 << 4) | 2, (10 << 4) | 7, (12 << 4) | 0]);
    const back = dequantizeBnb4(q, { k: 3, n: 2, blockSize: 16, quantType: 1 });
    expect(back[0]).toBe(2);
    expect(back[1]).toBe(Math.fround(NF4_TABLE[2]! * 2));
  });
  it('cutting columns of a weight whose K is a whole number of blocks keeps the bytes', () => {
    const shape = { k: 128, n: 5, blockSize: 64, quantType: 1 };
    const w = randomFloats(new Rng('bnb4'), 128 * 5);
    const q = quantizeBnb4(w, shape);
    const keptRows = Array.from({ length: 64 }, (_, i) => 64 + i);
    expect(bnb4SliceIsExact(shape, keptRows)).toBe(true);
    expect(bnb4SliceIsExact(shape, [0, 1])).toBe(false);
    expect(bnb4SliceIsExact({ ...shape, k: 96 }, undefined)).toBe(false);
    const sliced = sliceBnb4(q, shape, [1, 4], keptRows);
    const direct = quantizeBnb4(columns(rows(w, 5, keptRows), 64, 5, [1, 4]), { ...shape, k: 64, n: 2 });
    expect(Buffer.from(sliced.tensors.packed).equals(Buffer.from(direct.packed))).toBe(true);
    expect(Array.from(sliced.tensors.absmax)).toEqual(Array.from(direct.absmax));
  });
});

/** x [rows, K] -> MatMul by an fp32 initializer W [K, N] -> y; the Gather reads an embedding table. */
function linearModel(k: number, n: number, seed: string): { model: ModelProto; weight: Float32Array } {
  const weight = randomFloats(new Rng(seed), k * n, 0.3);
  const graph = makeGraph({
    name: 'linear',
    nodes: [makeNode('MatMul', ['x', 'w'], ['y'], {}, { name: '/linear/MatMul' })],
    inputs: [makeValueInfo('x', DataType.FLOAT, ['rows', k])],
    outputs: [makeValueInfo('y', DataType.FLOAT, ['rows', n])],
    initializers: [makeTensor('w', [k, n], weight)],
  });
  return { model: makeModel(graph, { opsetImports: [{ domain: '', version: 17 }] }), weight };
}

describe('every converted format runs in onnxruntime and computes the weight resolveMatMulWeight reads', () => {
  it.each(WEIGHT_FORMATS)('%s', async (format) => {
    const k = 64;
    const n = 24;
    const { model, weight } = linearModel(k, n, `ort-${format}`);
    const converted = convertGraph(lazyGraphOf(model), format);
    const out = modelOfLazyGraph(model, converted.graph, converted.opsetImports);
    const index = new GraphIndex(out.graph!);
    const multiply = out.graph!.node.find((node) => ['MatMul', 'MatMulInteger', 'MatMulNBits', 'MatMulBnb4'].includes(node.opType ?? ''))!;
    const resolved = resolveMatMulWeight(index, multiply)!;
    expect(resolved.shape).toEqual([k, n]);
    const read = resolved.values();
    const identity = new Float32Array(k * k);
    for (let i = 0; i < k; i++) identity[i * k + i] = 1;
    const session = await ort.InferenceSession.create(encodeModel(out), { graphOptimizationLevel: 'disabled' });
    try {
      const y = (await session.run({ x: new ort.Tensor('float32', identity, [k, k]) }))['y']!.data as Float32Array;
      const tolerance = format === 'fp16' || format === 'q4f16' ? 2e-3 : 1e-5;
      let worst = 0;
      for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i]! - read[i]!));
      expect(worst).toBeLessThan(tolerance);
      // and it is the fp32 weight within the format's own rounding
      let error = 0;
      for (let i = 0; i < y.length; i++) error = Math.max(error, Math.abs(read[i]! - weight[i]!));
      const bound = { fp16: 1e-3, q8: 0.01, int8: 0.01, uint8: 0.01, q4: 0.1, q4f16: 0.1, bnb4: 0.15 }[format];
      expect(error).toBeLessThan(bound);
    } finally {
      await session.release();
    }
  });
});
