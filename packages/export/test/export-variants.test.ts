/**
 * Quantized (q8: MatMulInteger with int8 weights, per-tensor scales) and half-precision (fp16
 * with keep_io_types casts) files are pruned with the fp32 one: each loads in transformers.js
 * with its dtype and runs, maps back to `prunedGraph` of its own source graph (dequantized values
 * exactly), and a keep-everything export reproduces the q8 outputs exactly. GPT-2's q8 file has
 * its Conv1D Gemms turned into quantized MatMul + Add, its q4 file keeps them in float (only the
 * LM head is block-quantized); both are pruned.
 */
import { join } from 'path';
import { prunedGraph } from '@zerolm/core';
import type { ModelDtype } from '@zerolm/adapters';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import {
  allFinite,
  expectSameModuleGraph,
  loadHfModel,
  loadPipeline,
  nonUniformPlan,
  onnxFile,
  planFor,
  PROMPT,
  runDirect,
  sameBytes,
  tempRoot,
  TEXT,
} from './export-helpers';

const CASES = [
  { name: 'bert-tiny', dtypes: ['q8', 'fp16'], files: ['onnx/model.onnx', 'onnx/model_fp16.onnx', 'onnx/model_quantized.onnx'] },
  { name: 'llama-tiny', dtypes: ['q8', 'fp16'], files: ['onnx/model.onnx', 'onnx/model_fp16.onnx', 'onnx/model_quantized.onnx'] },
  { name: 'gpt2-tiny', dtypes: ['q8', 'q4'], files: ['onnx/model.onnx', 'onnx/model_q4.onnx', 'onnx/model_quantized.onnx'] },
] as const;
const IDS = [2, 17, 40, 9, 33, 5, 61, 12];

const root = tempRoot('export-variants');
const exported = new Map<string, string>();
beforeAll(async () => {
  ensureFixtures(CASES.map((c) => c.name));
  for (const { name, files } of CASES) {
    const source = loadHfModel(fixturePath(name));
    const out = join(root.dir, `${name}-pruned`);
    const result = await exportPrunedModel(fixturePath(name), nonUniformPlan(source.graph), out);
    expect(result.files.filter((f) => f.startsWith('onnx/'))).toEqual(files);
    exported.set(name, out);
  }
});
afterAll(() => root.remove());

function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += ((a[i] as number) - (b[i] as number)) ** 2;
    den += (b[i] as number) ** 2;
  }
  return Math.sqrt(num / den);
}

const rows = CASES.flatMap(({ name, dtypes }) => dtypes.map((dtype) => ({ name, dtype: dtype as ModelDtype })));

test.each(rows)('$name $dtype: pruned, equal to prunedGraph of its own graph, loads and runs', async ({ name, dtype }) => {
  const out = exported.get(name)!;
  const source = loadHfModel(fixturePath(name), { dtype });
  const plan = nonUniformPlan(source.graph);
  expectSameModuleGraph(loadHfModel(out, { dtype }), prunedGraph(source.graph, plan), source, plan);
  // Quantization noise around the pruned fp32 model, not another model.
  const reference = await runDirect(onnxFile(out), IDS);
  const variant = await runDirect(onnxFile(out, dtype), IDS);
  expect(relativeError(variant.output, reference.output)).toBeLessThan(dtype === 'fp16' ? 0.01 : 0.2);

  const decoder = name !== 'bert-tiny';
  const pipe = await loadPipeline(decoder ? 'text-generation' : 'feature-extraction', out, dtype);
  try {
    if (decoder) {
      const inputs = pipe.tokenizer(PROMPT, { add_special_tokens: false, return_tensor: true });
      const promptLength = inputs.input_ids.dims[1] as number;
      const output = await pipe.model(inputs);
      expect(output.logits.dims).toEqual([1, promptLength, 384]);
      expect(allFinite(output.logits.data)).toBe(true);
      const generated = await pipe.model.generate({ ...inputs, max_new_tokens: 4, do_sample: false });
      expect(generated.dims[1]).toBeGreaterThan(promptLength);
    } else {
      const output = await pipe(TEXT);
      expect(output.dims[2]).toBe(32);
      expect(allFinite(output.data)).toBe(true);
    }
  } finally {
    await pipe.dispose();
  }
});

test.each(['bert-tiny', 'llama-tiny'])('%s q8: keeping everything reproduces the q8 outputs exactly', async (name) => {
  const out = join(root.dir, `${name}-all`);
  await exportPrunedModel(fixturePath(name), planFor(loadHfModel(fixturePath(name)).graph), out);
  const before = await runDirect(onnxFile(fixturePath(name), 'q8'), IDS);
  const after = await runDirect(onnxFile(out, 'q8'), IDS);
  expect(sameBytes(after.output, before.output)).toBe(true);
});
