import { countParams, getMeasure, graphCapacity, unitCapacities } from '@zerolm/core';
import { GraphIndex, loadModel, resolveMatMulWeight } from '@zerolm/onnx';
import { ensureFixtures, fixturePath, FIXTURE_NAMES } from '@zerolm/test-fixtures';
import * as path from 'path';
import { findFamily, loadHfModel, SUPPORTED_MODEL_TYPES } from '../src';
import { describeShared, sharedPaths } from './shared-data';

beforeAll(() => ensureFixtures());

/**
 * An independent, name-free count of the Attention and FFN parameters stored in an ONNX file:
 * every constant right operand of a MatMul/Gemm plus the constant bias added to its result,
 * except the multiply that produces the logits (the LM head), the masked-LM head's and ELECTRA's
 * embedding projection (multiplies outside the layers, recognised by their node names in this
 * test only).
 */
function moduleInitializerSizes(file: string): number {
  const { model } = loadModel(file);
  const index = new GraphIndex(model.graph!);
  let total = 0;
  for (const node of model.graph!.node) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm') continue;
    if (node.name?.startsWith('/embeddings_project/') || node.name?.startsWith('/cls/') || node.name?.startsWith('/lm_head/') || node.name?.startsWith('/head/')) continue;
    const weight = resolveMatMulWeight(index, node, 1);
    if (!weight || weight.shape.length !== 2) continue;
    const out = node.output[0]!;
    if (index.isGraphOutput(out) || index.consumers(out).some((c) => c.output.some((o) => index.isGraphOutput(o) && o === 'logits'))) continue;
    total += weight.shape[0]! * weight.shape[1]!;
    const bias = node.opType === 'Gemm' ? node.input[2] : index.consumers(out).find((c) => c.opType === 'Add')?.input.find((i) => index.isConstant(i));
    if (bias) total += index.constantTensor(bias)!.dims.reduce((a, b) => a * Number(b), 1);
  }
  return total;
}

describe('Hugging Face model folders', () => {
  it('covers every supported model type with a fixture', () => {
    const types = new Set(FIXTURE_NAMES.map((name) => loadHfModel(fixturePath(name)).config.modelType));
    expect([...types].sort()).toEqual(Object.keys(SUPPORTED_MODEL_TYPES).sort());
  });

  it.each(FIXTURE_NAMES)('%s: one Attention and one FFN module per layer, parameters as stored in the file', (name) => {
    const model = loadHfModel(fixturePath(name));
    const fixture = model.config.raw['zerolm_fixture'] as { spec: { layers: number } } | undefined;
    expect(model.graph.family).toBe(model.config.modelType);
    expect(model.graph.layers).toHaveLength(model.config.numLayers);
    if (fixture) expect(model.graph.layers).toHaveLength(fixture.spec.layers);
    for (const layer of model.graph.layers) {
      expect(layer.attention.matrices.map((m) => m.role)).toEqual(['q', 'k', 'v', 'o']);
      const gated = findFamily(model.config.modelType)!.traits.ffn === 'gated';
      expect(layer.ffn.matrices.map((m) => m.role)).toEqual(gated ? ['up', 'gate', 'down'] : ['up', 'down']);
      const a = layer.attention;
      expect(a.matrices[0]!.cols).toBe(a.heads * a.headDim);
      expect(a.matrices[1]!.cols).toBe(a.kvHeads * a.headDim);
      expect(a.matrices[3]!.rows).toBe(a.heads * a.headDim);
    }
    // onnxruntime-written graphs (packed Attention weights, biases inside fused operators, 4-bit
    // weights) are checked against their torch-style twins in export-fused.test.ts instead.
    const style = (fixture?.spec as { style?: string } | undefined)?.style;
    if (style === undefined || style === 'torch') expect(countParams(model.graph).modules).toBe(moduleInitializerSizes(model.file));
  });

  it.each(['bert-tiny', 'llama-tiny', 'gpt2-tiny'])('%s: fp32 and q8 capacities agree within 2%%', (name) => {
    const fp32 = graphCapacity(loadHfModel(fixturePath(name)).graph);
    const q8 = graphCapacity(loadHfModel(fixturePath(name), { dtype: 'q8' }).graph);
    fp32.layers.forEach((layer, i) => {
      expect(Math.abs(q8.layers[i]!.attention.capacity / layer.attention.capacity - 1)).toBeLessThan(0.02);
      expect(Math.abs(q8.layers[i]!.ffn.capacity / layer.ffn.capacity - 1)).toBeLessThan(0.02);
    });
  });

  it('reads fp16 files to the same structure', () => {
    const fp32 = loadHfModel(fixturePath('llama-tiny')).graph;
    const fp16 = loadHfModel(fixturePath('llama-tiny'), { dtype: 'fp16' }).graph;
    expect(countParams(fp16)).toEqual(countParams(fp32));
  });

  it('maps GPT-2 fused c_attn into q, k, v column ranges of one tensor', () => {
    const model = loadHfModel(fixturePath('gpt2-tiny'));
    const [q, k, v] = model.graph.layers[0]!.attention.matrices;
    expect([q!.name, k!.name, v!.name].every((n) => n.includes('c_attn'))).toBe(true);
    expect(q!.values()).not.toEqual(k!.values());
    expect(model.match.layers[0]!.attention.q.splitIndex).toBe(0);
    expect(model.match.layers[0]!.attention.v.splitIndex).toBe(2);
  });

  it('reads per-layer head counts and widths of a non-uniform model from the graph', () => {
    const model = loadHfModel(fixturePath('llama-nonuniform'));
    const shapes = model.graph.layers.map((l) => [l.attention.heads, l.attention.kvHeads, l.ffn.width]);
    expect(new Set(shapes.map((s) => s.join('/'))).size).toBeGreaterThan(1);
  });

  it('gives planted all-zero units zero capacity, per head group and per neuron', () => {
    const msv = getMeasure('msv');
    const model = loadHfModel(fixturePath('llama-planted'));
    type Planted = { layer: number; kvGroup?: number; neuron?: number; head?: number };
    const planted = (model.config.raw['zerolm_fixture'] as { spec: { planted: Planted[] } }).spec.planted;
    const whole = planted.filter((u) => u.kvGroup !== undefined || u.neuron !== undefined);
    expect(whole.length).toBeGreaterThan(0);
    for (const unit of whole) {
      const caps = unitCapacities(model.graph.layers[unit.layer]!, msv);
      expect(unit.kvGroup !== undefined ? caps.groups[unit.kvGroup] : caps.neurons[unit.neuron!]).toBe(0);
    }
  });
});

describeShared('Hugging Face model folders: the shared trained decoders', () => {
  it.each(['kjv-llama-tiny', 'kjv-gpt2-tiny'])('%s maps structurally despite anonymous weight names', (name) => {
    const model = loadHfModel(path.join(sharedPaths.modelsDir, name));
    expect(model.graph.layers).toHaveLength(3);
    expect(countParams(model.graph).modules).toBe(moduleInitializerSizes(model.file));
    const first = model.graph.layers[0]!.attention;
    expect([first.heads, first.kvHeads]).toEqual(name.includes('llama') ? [6, 2] : [4, 4]);
  });
});
