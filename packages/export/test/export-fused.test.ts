/**
 * Graphs as onnxruntime writes them: onnxruntime-genai's model builder (GroupQueryAttention with
 * a packed q|k|v projection and rotary tables, SkipSimplifiedLayerNormalization; Qwen2's packed
 * bias; int4 MatMulNBits) and the transformer optimizer's fused BERT (EmbedLayerNormalization,
 * Attention with a packed weight, or MultiHeadAttention with a packed bias; SkipLayerNormalization
 * with the dense bias; BiasGelu / FastGelu). Each fixture draws the same weights as its
 * torch.onnx-style twin (same spec, `style` left out), which is the ground truth: the matcher
 * finds the twin's modules, heads, head size, widths and matrix capacities. A non-uniform plan
 * exports exactly `prunedGraph` of the source, computes the sub-network, and loads in
 * transformers.js (decoders: cached generate equals a full-context greedy loop); removing the
 * planted units changes the outputs by at most 1e-5; the int4 file scores like its fp32 twin and
 * prunes (MatMulNBits cut along its blocks or re-quantized).
 */
import { join } from 'path';
import { countParams, getMeasure, graphCapacity, prunedGraph, type ModuleGraph } from '@zerolm/core';
import { ensureFixtures, fixturePath, twinFixturePath } from '@zerolm/test-fixtures';
import type { NodeProto } from '@zerolm/onnx';
import { exportPrunedModel } from '../src';
import {
  allFinite,
  expectSameModuleGraph,
  generateBothWays,
  loadHfModel,
  loadPipeline,
  maxAbsDiff,
  nonUniformPlan,
  onnxFile,
  planFor,
  plantedPlan,
  runDirect,
  sameBytes,
  tempRoot,
  TEXT,
  writeMaskedReference,
} from './export-helpers';

const FUSED = ['llama-genai', 'llama-genai-rotary', 'qwen2-genai', 'bert-fused', 'bert-fused-mha'] as const;
const IDS = [2, 17, 40, 9, 33, 5, 61, 12, 3];

const root = tempRoot('export-fused');
beforeAll(() => ensureFixtures([...FUSED, 'llama-genai-int4']));
afterAll(() => root.remove());

describe.each(FUSED)('%s', (name) => {
  const decoder = !name.startsWith('bert');

  test('maps the modules, heads, head size, widths and capacities of its torch-style twin', () => {
    const model = loadHfModel(fixturePath(name));
    const truth = loadHfModel(twinFixturePath(name));
    expect(model.match.layers.every((l) => l.attention.fused !== undefined)).toBe(true);
    const shapes = (g: typeof model.graph) => g.layers.map((l) => [l.attention.heads, l.attention.kvHeads, l.attention.headDim, l.ffn.width, l.ffn.matrices.map((m) => m.role).join()]);
    expect(shapes(model.graph)).toEqual(shapes(truth.graph));
    expect(countParams(model.graph).modules).toBe(countParams(truth.graph).modules);
    const capacities = (g: typeof model.graph) => graphCapacity(g, { measure: getMeasure('msv') }).layers.flatMap((l) => [...l.attention.matrices, ...l.ffn.matrices].map((m) => m.capacity));
    const got = capacities(model.graph);
    const want = capacities(truth.graph);
    expect(got).toHaveLength(want.length);
    got.forEach((c, i) => expect(Math.abs(c / want[i]! - 1)).toBeLessThan(1e-6));
  });

  test('computes what its torch-style twin computes', async () => {
    const fused = await runDirect(onnxFile(fixturePath(name)), IDS);
    const reference = await runDirect(onnxFile(twinFixturePath(name)), IDS);
    // ort-fused-mha approximates GELU with tanh (FastGelu), the twin uses erf.
    expect(maxAbsDiff(fused.output, reference.output)).toBeLessThan(name === 'bert-fused-mha' ? 2e-3 : 1e-4);
  });

  test('a non-uniform plan exports prunedGraph of the source, the sub-network, and loads in transformers.js', async () => {
    const source = loadHfModel(fixturePath(name));
    const plan = nonUniformPlan(source.graph);
    const out = join(root.dir, `${name}-pruned`);
    const result = await exportPrunedModel(fixturePath(name), plan, out);
    expect(result.params.after).toBeLessThan(result.params.before);
    const exported = loadHfModel(out);
    expectSameModuleGraph(exported, prunedGraph(source.graph, plan), source, plan);
    // The operator's head counts follow the cut.
    exported.match.layers.forEach((l, i) => {
      const { heads, kvHeads } = exported.graph.layers[i]!.attention;
      const stated = (node: NodeProto, name: string) => Number(node.attribute.find((a) => a.name === name)!.i);
      expect(stated(l.attention.fused!.node, 'num_heads')).toBe(heads);
      // RotaryEmbedding operators that state their head counts state the kept ones.
      for (const { node, role } of l.attention.fused!.rotary) expect(stated(node, 'num_heads')).toBe(role === 'q' ? heads : kvHeads);
    });
    if (name === 'llama-genai-rotary') expect(exported.match.layers.every((l) => l.attention.fused!.rotary.length === 2)).toBe(true);
    const masked = join(root.dir, `${name}-masked`);
    writeMaskedReference(fixturePath(name), plan, masked);
    const after = await runDirect(onnxFile(out), IDS);
    const reference = await runDirect(onnxFile(masked), IDS);
    expect(maxAbsDiff(after.output, reference.output)).toBeLessThan(1e-4);
    if (decoder) {
      const { cached, reference: greedy } = await generateBothWays(out, 'fp32');
      expect(cached).toEqual(greedy);
      expect(cached.length).toBeGreaterThanOrEqual(4);
    } else {
      const extractor = await loadPipeline('feature-extraction', out);
      try {
        const output = await extractor(TEXT);
        expect(output.dims[2]).toBe(source.graph.hiddenSize);
        expect(allFinite(output.data)).toBe(true);
      } finally {
        await extractor.dispose();
      }
    }
  });

  test('keeping everything reproduces the outputs exactly', async () => {
    const source = loadHfModel(fixturePath(name));
    const out = join(root.dir, `${name}-all`);
    await exportPrunedModel(fixturePath(name), planFor(source.graph), out);
    const before = await runDirect(onnxFile(fixturePath(name)), IDS);
    const after = await runDirect(onnxFile(out), IDS);
    expect(sameBytes(after.output, before.output)).toBe(true);
  });
});

test.each(['llama-genai', 'bert-fused'] as const)('%s: removing exactly the planted units changes the outputs by at most 1e-5', async (name) => {
  const { source, plan } = plantedPlan(name);
  const out = join(root.dir, `${name}-planted`);
  const result = await exportPrunedModel(fixturePath(name), plan, out);
  expect(result.layers.some((l, i) => l.kvHeads < source.graph.layers[i]!.attention.kvHeads)).toBe(true);
  expect(result.layers.some((l, i) => l.ffnWidth < source.graph.layers[i]!.ffn.width)).toBe(true);
  const before = await runDirect(onnxFile(fixturePath(name)), IDS);
  const after = await runDirect(onnxFile(out), IDS);
  expect(maxAbsDiff(after.output, before.output)).toBeLessThanOrEqual(1e-5);
});

test('a layer whose residual sums live inside SkipLayerNormalization nodes is not dropped', async () => {
  const source = loadHfModel(fixturePath('llama-genai'));
  await expect(exportPrunedModel(fixturePath('llama-genai'), planFor(source.graph, { 0: { dropped: true } }), join(root.dir, 'genai-dropped'))).rejects.toThrow(
    /layer 0: cannot drop the layer: its residual additions are fused into Skip\*LayerNormalization nodes/,
  );
});

describe('llama-genai-int4 (the builder\'s int4: MatMulNBits)', () => {
  test('scores: the modules of the fp32 file, capacities within 5%', () => {
    const int4 = loadHfModel(fixturePath('llama-genai-int4'));
    const fp32 = loadHfModel(twinFixturePath('llama-genai-int4'));
    expect(countParams(int4.graph).modules).toBe(countParams(fp32.graph).modules);
    const a = graphCapacity(int4.graph).layers;
    graphCapacity(fp32.graph).layers.forEach((layer, i) => {
      expect(Math.abs(a[i]!.attention.capacity / layer.attention.capacity - 1)).toBeLessThan(0.05);
      expect(Math.abs(a[i]!.ffn.capacity / layer.ffn.capacity - 1)).toBeLessThan(0.05);
    });
  });

  test('prunes: the export maps to the planned shapes and cached generation equals a full-context greedy loop', async () => {
    const source = loadHfModel(fixturePath('llama-genai-int4'));
    const plan = nonUniformPlan(source.graph);
    const out = join(root.dir, 'int4-pruned');
    const result = await exportPrunedModel(fixturePath('llama-genai-int4'), plan, out);
    expect(result.params.after).toBeLessThan(result.params.before);
    const exported = loadHfModel(out);
    const shapes = (g: ModuleGraph) => g.layers.map((l) => [l.attention.heads, l.attention.kvHeads, l.attention.headDim, l.ffn.width]);
    expect(shapes(exported.graph)).toEqual(shapes(prunedGraph(source.graph, plan)));
    // The packed q|k|v projection stays one MatMulNBits; the operator's head counts follow the cut.
    exported.match.layers.forEach((l, i) => {
      expect(l.attention.q.multiply.node.opType).toBe('MatMulNBits');
      const stated = (node: NodeProto, name: string) => Number(node.attribute.find((a) => a.name === name)!.i);
      expect(stated(l.attention.fused!.node, 'num_heads')).toBe(exported.graph.layers[i]!.attention.heads);
      expect(stated(l.attention.fused!.node, 'kv_num_heads')).toBe(exported.graph.layers[i]!.attention.kvHeads);
    });
    const { cached, reference } = await generateBothWays(out, 'fp32');
    expect(cached).toEqual(reference);
    expect(cached.length).toBeGreaterThanOrEqual(4);
  });
});
