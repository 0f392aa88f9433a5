/**
 * The exporter on every decoder family's fixture (GPT-2 with its fused c_attn Gemm, LLaMA with
 * grouped-query attention, Qwen2 with q/k/v biases, Mistral with a single key-value head, and a
 * non-uniform LLaMA): a non-uniform plan exports a folder that transformers.js loads, whose
 * cached greedy generation equals a full-context greedy loop on the same file, and whose module
 * graph is exactly `prunedGraph` of the source; a keep-everything plan reproduces the source's
 * logits bit for bit.
 */
import { join } from 'path';
import { prunedGraph } from '@zerolm/core';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import {
  allFinite,
  expectSameModuleGraph,
  generateBothWays,
  loadHfModel,
  nonUniformPlan,
  onnxFile,
  planFor,
  runDirect,
  maxAbsDiff,
  sameBytes,
  tempRoot,
  writeMaskedReference,
} from './export-helpers';

const DECODERS = ['gpt2-tiny', 'llama-tiny', 'qwen2-tiny', 'mistral-tiny', 'llama-nonuniform'] as const;
const IDS = [2, 17, 40, 9, 33, 5, 61, 12];

const root = tempRoot('export-decoders');
beforeAll(() => ensureFixtures([...DECODERS]));
afterAll(() => root.remove());

describe.each(DECODERS)('%s', (name) => {
  test('a non-uniform plan exports a model transformers.js generates with, equal to prunedGraph', async () => {
    const source = loadHfModel(fixturePath(name));
    const plan = nonUniformPlan(source.graph);
    const out = join(root.dir, `${name}-pruned`);
    const result = await exportPrunedModel(fixturePath(name), plan, out, { zerolm: { budget: 0.5 }, files: { 'plan.json': JSON.stringify(plan) } });

    expect(result.params.after).toBeLessThan(result.params.before);
    // Layers end up with different head counts, unless a single key-value head leaves only the FFN to cut.
    if (source.graph.layers[0]!.attention.kvHeads > 1) expect(new Set(result.layers.map((l) => l.heads)).size).toBeGreaterThan(1);
    expect(result.files).toEqual(expect.arrayContaining(['config.json', 'onnx/model.onnx', 'plan.json', 'tokenizer.json', 'generation_config.json']));
    const exported = loadHfModel(out);
    expectSameModuleGraph(exported, prunedGraph(source.graph, plan), source, plan);
    expect(exported.config.raw['zerolm']).toMatchObject({ budget: 0.5, headDim: source.graph.layers[0]!.attention.headDim });

    // The pruned model computes the sub-network: the source with the removed units zeroed.
    const masked = join(root.dir, `${name}-masked`);
    writeMaskedReference(fixturePath(name), plan, masked);
    const pruned = await runDirect(onnxFile(out), IDS);
    const reference = await runDirect(onnxFile(masked), IDS);
    expect(pruned.dims).toEqual(reference.dims);
    expect(maxAbsDiff(pruned.output, reference.output)).toBeLessThan(1e-4);

    const { cached, reference: fullContext } = await generateBothWays(out, 'fp32');
    expect(cached).toEqual(fullContext);
    expect(cached.length).toBeGreaterThanOrEqual(4);
  });

  test('keeping everything reproduces the logits exactly', async () => {
    const source = loadHfModel(fixturePath(name));
    const out = join(root.dir, `${name}-all`);
    await exportPrunedModel(fixturePath(name), planFor(source.graph), out);
    const before = await runDirect(onnxFile(fixturePath(name)), IDS);
    const after = await runDirect(onnxFile(out), IDS);
    expect(allFinite(after.output)).toBe(true);
    expect(sameBytes(after.output, before.output)).toBe(true);
  });
});

test.each([
  ['mistral-tiny', 0],
  ['gpt2-tiny', 1],
] as const)('%s: a dropped layer and a cut FFN load, run and generate (with one key-value head, all mistral allows)', async (name, dropped) => {
  const source = loadHfModel(fixturePath(name));
  const kept = 1 - dropped;
  const width = source.graph.layers[kept]!.ffn.width;
  const plan = planFor(source.graph, { [dropped]: { dropped: true }, [kept]: { neurons: Array.from({ length: width / 2 }, (_, j) => 2 * j + 1) } });
  const out = join(root.dir, `${name}-dropped`);
  await exportPrunedModel(fixturePath(name), plan, out);
  const exported = loadHfModel(out);
  expect(exported.graph.layers.map((l) => l.ffn.width)).toEqual([width / 2]);
  expectSameModuleGraph(exported, prunedGraph(source.graph, plan), source, plan);

  const masked = join(root.dir, `${name}-dropped-masked`);
  writeMaskedReference(fixturePath(name), plan, masked);
  const pruned = await runDirect(onnxFile(out), IDS);
  expect(pruned.inputs.filter((n) => n.startsWith('past_key_values.'))).toEqual(['past_key_values.0.key', 'past_key_values.0.value']);
  expect(maxAbsDiff(pruned.output, (await runDirect(onnxFile(masked), IDS)).output)).toBeLessThan(1e-4);
  const { cached, reference } = await generateBothWays(out, 'fp32');
  expect(cached).toEqual(reference);
});
