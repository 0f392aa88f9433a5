/**
 * Every weight file transformers.js loads is pruned with the others: each written file loads in
 * transformers.js with its own dtype (decoders: cached greedy generation equals a full-context
 * loop on the same file; encoders: the pipeline computes what onnxruntime computes on the file)
 * and maps back to the planned shapes. Block-quantized weights keep their stored codes where the
 * cut follows the blocks and are re-quantized (and listed) where it cuts through them. `dtypes`
 * writes formats the source lacks, converted from the pruned fp32 file.
 */
import { cpSync, existsSync, rmSync } from 'fs';
import { join } from 'path';
import { keptIndices, prunedGraph } from '@zerolm/core';
import { DTYPES_BY_PRECISION, type MatrixSource, type ModelDtype } from '@zerolm/adapters';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel, transformersJsConfig } from '../src';
import { expectCachedGreedyMatches, loadHfModel, loadPipeline, maxAbsDiff, nonUniformPlan, onnxFile, runDirect, tempRoot, TEXT } from './export-helpers';

const root = tempRoot('export-formats');
beforeAll(() => ensureFixtures(['llama-formats', 'bert-formats', 'llama-tiny']));
afterAll(() => root.remove());

const shapesOf = (graph: ReturnType<typeof prunedGraph>) => graph.layers.map((l) => [l.attention.heads, l.attention.kvHeads, l.ffn.width]);

describe('llama-formats: all eight files pruned', () => {
  const out = join(root.dir, 'llama-formats');
  let result: Awaited<ReturnType<typeof exportPrunedModel>>;
  beforeAll(async () => {
    const source = loadHfModel(fixturePath('llama-formats'));
    result = await exportPrunedModel(fixturePath('llama-formats'), nonUniformPlan(source.graph), out);
  });

  test('every file is written, pruned from its own source file; re-quantized where a cut crosses blocks', () => {
    expect(result.onnxFiles.map((f) => f.dtype)).toEqual(DTYPES_BY_PRECISION);
    expect(result.onnxFiles.every((f) => f.from === 'pruned')).toBe(true);
    expect(result.skipped).toEqual([]);
    const source = loadHfModel(fixturePath('llama-formats'));
    const weightOf = (dtype: ModelDtype, layer: number, role: string) => {
      const hf = loadHfModel(fixturePath('llama-formats'), { dtype });
      const m = [...hf.graph.layers[layer]!.attention.matrices, ...hf.graph.layers[layer]!.ffn.matrices].find((x) => x.role === role)!;
      return (m.source as MatrixSource).multiply.weight.dataName;
    };
    // q4 blocks are 32 input rows: a key-value group of o (2 heads x 16) is a whole block, every third FFN neuron is not.
    const requantized = (dtype: ModelDtype) => result.onnxFiles.find((f) => f.dtype === dtype)!.requantized.map((r) => r.weight).sort();
    for (const dtype of ['q4', 'q4f16'] as const) expect(requantized(dtype)).toEqual([weightOf(dtype, 0, 'down'), weightOf(dtype, 1, 'down')].sort());
    // bnb4 blocks are 64 values of the flattened [N, K]: o's 32-row group is half a block.
    expect(requantized('bnb4')).toEqual([weightOf('bnb4', 0, 'o'), weightOf('bnb4', 0, 'down'), weightOf('bnb4', 1, 'down')].sort());
    for (const dtype of ['fp32', 'fp16', 'q8', 'int8', 'uint8'] as const) expect(requantized(dtype)).toEqual([]);
    expect(source.graph.layers).toHaveLength(2);
  });

  test('q4: columns and whole blocks keep their codes: the pruned weights dequantize to the source values exactly', () => {
    const plan = nonUniformPlan(loadHfModel(fixturePath('llama-formats')).graph);
    const source = loadHfModel(fixturePath('llama-formats'), { dtype: 'q4' });
    const pruned = loadHfModel(out, { dtype: 'q4' });
    expect(shapesOf(pruned.graph)).toEqual(shapesOf(prunedGraph(source.graph, plan)));
    const layer = source.graph.layers[0]!;
    for (const role of ['q', 'k', 'v', 'up', 'gate', 'o'] as const) {
      const matrix = [...layer.attention.matrices, ...layer.ffn.matrices].find((m) => m.role === role)!;
      const kept = keptIndices(layer, matrix, plan.layers[0]!)!;
      const values = matrix.values();
      const expected = role === 'o'
        ? Float32Array.from(kept.flatMap((r) => Array.from(values.subarray(r * matrix.cols, (r + 1) * matrix.cols))))
        : Float32Array.from({ length: matrix.rows * kept.length }, (_, i) => values[Math.floor(i / kept.length) * matrix.cols + kept[i % kept.length]!]!);
      const actual = [...pruned.graph.layers[0]!.attention.matrices, ...pruned.graph.layers[0]!.ffn.matrices].find((m) => m.role === role)!.values();
      expect({ role, equal: Buffer.from(actual.buffer).equals(Buffer.from(expected.buffer)) }).toEqual({ role, equal: true });
    }
  });

  test.each(DTYPES_BY_PRECISION)('%s loads in transformers.js; cached greedy generation matches the full-context loop on the file', async (dtype) => {
    const tokens = await expectCachedGreedyMatches(out, dtype);
    expect(tokens.length).toBeGreaterThanOrEqual(4);
  });
});

describe('bert-formats: all eight files pruned', () => {
  const out = join(root.dir, 'bert-formats');
  beforeAll(async () => {
    await exportPrunedModel(fixturePath('bert-formats'), nonUniformPlan(loadHfModel(fixturePath('bert-formats')).graph), out);
  });
  test.each(DTYPES_BY_PRECISION)('%s loads in transformers.js with its dtype and computes what onnxruntime computes on the file', async (dtype) => {
    const extractor = await loadPipeline('feature-extraction', out, dtype);
    try {
      const output = await extractor(TEXT);
      const ids: number[] = Array.from(extractor.tokenizer(TEXT).input_ids.data as BigInt64Array, Number);
      const direct = await runDirect(onnxFile(out, dtype), ids);
      expect(output.dims).toEqual([...direct.dims]);
      expect(maxAbsDiff(output.data as Float32Array, direct.output)).toBeLessThan(1e-4);
    } finally {
      await extractor.dispose();
    }
  });
});

describe('dtypes: the files to write, including formats the source lacks', () => {
  test('llama-tiny (fp32, fp16, q8) written in every format: the others converted from the pruned fp32 file', async () => {
    const source = loadHfModel(fixturePath('llama-tiny'));
    const out = join(root.dir, 'llama-tiny-all');
    const result = await exportPrunedModel(fixturePath('llama-tiny'), nonUniformPlan(source.graph), out, { dtypes: ['q4f16', 'fp32', 'q4', 'bnb4', 'int8', 'uint8', 'q8'] });
    expect(result.onnxFiles.map((f) => [f.dtype, f.from])).toEqual([
      ['fp32', 'pruned'],
      ['q8', 'pruned'],
      ['int8', 'converted from fp32'],
      ['uint8', 'converted from fp32'],
      ['q4', 'converted from fp32'],
      ['q4f16', 'converted from fp32'],
      ['bnb4', 'converted from fp32'],
    ]);
    expect(result.skipped).toEqual(['onnx/model_fp16.onnx']);
    const fp32 = loadHfModel(out);
    for (const dtype of ['int8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const) {
      const converted = loadHfModel(out, { dtype });
      expect(shapesOf(converted.graph)).toEqual(shapesOf(fp32.graph));
      await expectCachedGreedyMatches(out, dtype);
    }
  });

  test('a format the source lacks needs its fp32 file', async () => {
    const source = loadHfModel(fixturePath('llama-formats'), { dtype: 'q4' });
    const q4only = join(root.dir, 'q4-only');
    cpSync(fixturePath('llama-formats'), q4only, { recursive: true });
    for (const dtype of DTYPES_BY_PRECISION.filter((d) => d !== 'q4')) rmSync(onnxFile(q4only, dtype));
    await expect(exportPrunedModel(q4only, nonUniformPlan(source.graph), join(root.dir, 'never'), { dtypes: ['q4', 'q8'] })).rejects.toThrow(
      /has no onnx\/model_quantized\.onnx \(q8\), and a format the source lacks is made from its fp32 file onnx\/model\.onnx, which it lacks too \(it holds q4\)/,
    );
    expect(existsSync(join(root.dir, 'never'))).toBe(false);
    const result = await exportPrunedModel(q4only, nonUniformPlan(source.graph), join(root.dir, 'q4-only-pruned'));
    expect(result.onnxFiles.map((f) => f.dtype)).toEqual(['q4']);
  });
});

test('transformers.js_config states what was written: external data, cache types, and dtypes naming written files', () => {
  const files = [
    { dtype: 'q4', file: 'onnx/model_q4.onnx', bytes: 1, kvCacheType: 'float32' },
    { dtype: 'q4f16', file: 'onnx/model_q4f16.onnx', bytes: 1, externalData: { file: 'onnx/model_q4f16.onnx_data', bytes: 2 }, kvCacheType: 'float16' },
  ];
  expect(
    transformersJsConfig({ dtype: 'fp32', use_external_data_format: true, device_config: { webgpu: { dtype: { model: 'q4f16' } }, wasm: { dtype: 'q8' } }, other: 1 }, files),
  ).toEqual({
    dtype: 'q4',
    use_external_data_format: { 'model_q4f16.onnx': 1 },
    kv_cache_dtype: { q4: 'float32', q4f16: 'float16' },
    device_config: { webgpu: { dtype: { model: 'q4f16' } }, wasm: { dtype: 'q4' } },
    other: 1,
  });
  expect(transformersJsConfig(undefined, [files[0]!])).toBeUndefined();
});
