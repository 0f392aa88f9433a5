/**
 * Every weight format transformers.js loads maps to the same module graph as the fp32 file:
 * same shapes and parameters, capacities from the dequantized weights within 2% (8-bit) and 5%
 * (4-bit) of fp32's per matrix; `auto` picks the most precise file; corrupt packed weights are
 * one clear error.
 */
import { countParams, matrixCapacity, resolveMeasure, scoreReport } from '@zerolm/core';
import { decodeModel, encodeModel, GraphIndex, loadModel, saveModel } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DTYPE_FILES, DTYPES_BY_PRECISION, loadHfModel, presentDtypes, resolveDtype, type ModelDtype } from '../src';

let tmp: string;
beforeAll(() => {
  ensureFixtures(['llama-formats', 'bert-formats']);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-formats-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TOLERANCE: Record<ModelDtype, number> = { fp32: 0, fp16: 0.002, q8: 0.02, int8: 0.02, uint8: 0.02, q4: 0.05, q4f16: 0.05, bnb4: 0.05 };

describe.each(['llama-formats', 'bert-formats'])('%s', (name) => {
  const formats = DTYPES_BY_PRECISION.filter((d) => d !== 'fp32');
  it.each(formats)('%s: the module graph of fp32, capacities within the format rounding', (dtype) => {
    const fp32 = loadHfModel(fixturePath(name));
    const model = loadHfModel(fixturePath(name), { dtype });
    expect(model.dtype).toBe(dtype);
    expect(model.graph.dtype).toBe(dtype);
    expect(countParams(model.graph)).toEqual(countParams(fp32.graph));
    for (const measure of ['msv', 'nuclear']) {
      fp32.graph.layers.forEach((layer, l) => {
        const other = model.graph.layers[l]!;
        expect([other.attention.heads, other.attention.kvHeads, other.attention.headDim, other.ffn.width]).toEqual([layer.attention.heads, layer.attention.kvHeads, layer.attention.headDim, layer.ffn.width]);
        const matrices = [...layer.attention.matrices, ...layer.ffn.matrices];
        const others = [...other.attention.matrices, ...other.ffn.matrices];
        matrices.forEach((m, i) => {
          const o = others[i]!;
          expect([o.role, o.rows, o.cols]).toEqual([m.role, m.rows, m.cols]);
          const a = matrixCapacity(m, resolveMeasure(measure));
          const b = matrixCapacity(o, resolveMeasure(measure));
          expect({ dtype, measure, layer: l, role: m.role, off: Math.abs(b / a - 1) <= TOLERANCE[dtype] }).toEqual({ dtype, measure, layer: l, role: m.role, off: true });
        });
      });
    }
    const score = scoreReport(model.graph, { measure: 'msv', alpha: 0.5 }).score;
    expect(Math.abs(score / scoreReport(fp32.graph, { measure: 'msv', alpha: 0.5 }).score - 1)).toBeLessThan(TOLERANCE[dtype]);
  });
});

describe('dtype auto', () => {
  it('picks fp32 when present, else the most precise file present', () => {
    const dir = path.join(tmp, 'auto');
    fs.cpSync(fixturePath('llama-formats'), dir, { recursive: true });
    expect(presentDtypes(dir)).toEqual(DTYPES_BY_PRECISION);
    expect(resolveDtype(dir, 'auto')).toBe('fp32');
    for (const dtype of ['fp32', 'fp16', 'q8', 'int8', 'uint8'] as const) fs.rmSync(path.join(dir, 'onnx', DTYPE_FILES[dtype]));
    expect(resolveDtype(dir, 'auto')).toBe('q4');
    expect(loadHfModel(dir, { dtype: 'auto' }).dtype).toBe('q4');
    fs.rmSync(path.join(dir, 'onnx', DTYPE_FILES.q4));
    expect(loadHfModel(dir, { dtype: 'auto' }).dtype).toBe('q4f16');
    expect(() => loadHfModel(dir)).toThrow(/no onnx\/model\.onnx in .* \(available: q4f16, bnb4; --dtype auto picks q4f16\)/);
    expect(() => resolveDtype(dir, 'q2' as ModelDtype)).toThrow(/unknown dtype "q2"/);
  });
});

describe('corrupt packed weights are one clear error naming the node and the tensor', () => {
  function damaged(dtype: ModelDtype, as: string, edit: (index: GraphIndex, file: string) => void): string {
    const dir = path.join(tmp, as);
    fs.cpSync(fixturePath('llama-formats'), dir, { recursive: true });
    const file = path.join(dir, 'onnx', DTYPE_FILES[dtype]);
    const loaded = loadModel(file);
    const model = decodeModel(encodeModel(loaded.model));
    edit(new GraphIndex(model.graph!), file);
    saveModel(model, file);
    return dir;
  }
  const firstOf = (index: GraphIndex, op: string) => index.nodesOfType(op)[0]!;

  it.each([
    ['q4', 'wrong blob size', (index: GraphIndex) => {
      const t = index.initializer(firstOf(index, 'MatMulNBits').input[1]!)!;
      t.dims = [t.dims[0]!, t.dims[1]!, 8];
      t.rawData = t.rawData!.subarray(0, t.rawData!.byteLength / 2);
    }, /MatMulNBits node '.*_Q4': weight '.*_Q4' is UINT8 \[\d+, \d+, 8\], expected UINT8 \[\d+, \d+, 16\]/],
    ['q4f16', 'scales of the wrong length', (index: GraphIndex) => {
      const t = index.initializer(firstOf(index, 'MatMulNBits').input[2]!)!;
      t.dims = [Number(t.dims[0]) - 1];
      t.rawData = t.rawData!.subarray(0, t.rawData!.byteLength - 2);
    }, /MatMulNBits node '.*_Q4': scales '.*_scales' hold \d+ values, expected \d+/],
    ['q4', 'unknown bits', (index: GraphIndex) => {
      firstOf(index, 'MatMulNBits').attribute.find((a) => a.name === 'bits')!.i = 3;
    }, /MatMulNBits node '.*_Q4': unsupported or missing attributes .*bits=3/],
    ['bnb4', 'wrong absmax length', (index: GraphIndex) => {
      const t = index.initializer(firstOf(index, 'MatMulBnb4').input[2]!)!;
      t.dims = [Number(t.dims[0]) + 1];
      t.rawData = new Uint8Array(t.rawData!.byteLength + 4);
    }, /MatMulBnb4 node '.*_Bnb4': absmax '.*_absmax' holds \d+ values, expected \d+/],
  ] as const)('%s: %s', (dtype, label, edit, pattern) => {
    const dir = damaged(dtype, `${dtype}-${label.replace(/\W+/g, '-')}`, edit);
    expect(() => loadHfModel(dir, { dtype })).toThrow(pattern);
  });
});
