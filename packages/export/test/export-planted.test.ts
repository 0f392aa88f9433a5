/**
 * Pruning units that are exactly zero must not change what a model computes. On the planted
 * fixtures, removing exactly the planted attention units and FFN neurons changes the outputs by
 * at most 1e-5; on a LLaMA whose whole layer 1 is zero, dropping that layer does too (pre-norm:
 * the layer adds nothing to the residual stream), and transformers.js generates the same tokens.
 * A post-norm BERT with a layer dropped loads, runs and has fewer layers. In llama-planted's
 * quantized files the same units are removed: exactly where the cut keeps whole quantization
 * blocks (int8), within the format's own rounding where blocks are re-quantized (q4, q4f16, bnb4).
 */
import { join } from 'path';
import type { ModelSpec } from '@zerolm/test-fixtures';
import { ensureFixtures, ensureModel, fixturePath, GENERATED_FIXTURES_DIR, type PlantedUnit } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import { allFinite, generateBothWays, loadHfModel, loadPipeline, maxAbsDiff, onnxFile, planFor, plantedPlan, runDirect, tempRoot, TEXT } from './export-helpers';

const PLANTED = ['bert-planted', 'gpt2-planted', 'llama-planted'] as const;
const IDS = [2, 17, 40, 9, 33, 5, 61, 12, 3];

/** LLaMA (GQA 4/2) whose layer 1 is zero in every unit. */
const ZERO_LAYER_SPEC: ModelSpec = {
  family: 'llama', layers: 3, hidden: 32, heads: 4, kvHeads: 2, ffn: 48, vocab: 384, maxPositions: 64, seed: 31,
  planted: [
    { layer: 1, kvGroup: 0 },
    { layer: 1, kvGroup: 1 },
    ...Array.from({ length: 48 }, (_, neuron): PlantedUnit => ({ layer: 1, neuron })),
  ],
};
const ZERO_LAYER_DIR = join(GENERATED_FIXTURES_DIR, 'export-llama-zero-layer');

const root = tempRoot('export-planted');
beforeAll(() => {
  ensureFixtures([...PLANTED]);
  ensureModel(ZERO_LAYER_SPEC, ZERO_LAYER_DIR);
});
afterAll(() => root.remove());

test.each(PLANTED)('%s: removing exactly the planted units changes the outputs by at most 1e-5', async (name) => {
  const { source, plan } = plantedPlan(name);
  const out = join(root.dir, name);
  const result = await exportPrunedModel(fixturePath(name), plan, out);
  const removedGroups = result.layers.reduce((n, l, i) => n + source.graph.layers[i]!.attention.kvHeads - l.kvHeads, 0);
  expect(removedGroups).toBeGreaterThanOrEqual(2);
  expect(result.params.after).toBeLessThan(result.params.before);
  const before = await runDirect(onnxFile(fixturePath(name)), IDS);
  const after = await runDirect(onnxFile(out), IDS);
  expect(after.dims).toEqual(before.dims);
  expect(maxAbsDiff(after.output, before.output)).toBeLessThanOrEqual(1e-5);
});

function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

describe('llama-planted, quantized: removing exactly the planted units leaves the outputs as they were, within the format rounding', () => {
  const exported = join(root.dir, 'llama-planted-formats');
  let result: Awaited<ReturnType<typeof exportPrunedModel>>;
  beforeAll(async () => {
    const { plan } = plantedPlan('llama-planted');
    result = await exportPrunedModel(fixturePath('llama-planted'), plan, exported);
  });

  test.each(['int8', 'q4', 'q4f16', 'bnb4'] as const)('%s', async (dtype) => {
    const file = result.onnxFiles.find((f) => f.dtype === dtype)!;
    const fp32 = await runDirect(onnxFile(fixturePath('llama-planted')), IDS);
    const before = await runDirect(onnxFile(fixturePath('llama-planted'), dtype), IDS);
    const after = await runDirect(onnxFile(exported, dtype), IDS);
    expect(after.dims).toEqual(before.dims);
    if (dtype === 'int8') {
      // Sliced code for code; the removed units were exact zeros, so nothing else moves.
      expect(file.requantized).toEqual([]);
      expect(maxAbsDiff(after.output, before.output)).toBeLessThanOrEqual(1e-5);
    } else {
      // Blocks of o and down were cut (head size 8, block 32 / 64): those re-quantize, the rest is exact.
      expect(file.requantized.length).toBeGreaterThan(0);
      expect(file.requantized.every((r) => r.reason === 'cut through blocks')).toBe(true);
      expect(relativeError(after.output, before.output)).toBeLessThan(relativeError(before.output, fp32.output));
    }
  });
});

test('a pre-norm decoder with its all-zero layer dropped computes the same and generates the same tokens', async () => {
  const source = loadHfModel(ZERO_LAYER_DIR);
  const out = join(root.dir, 'llama-zero-layer-dropped');
  const result = await exportPrunedModel(ZERO_LAYER_DIR, planFor(source.graph, { 1: { dropped: true } }), out);
  expect(result.layers.map((l) => l.dropped)).toEqual([false, true, false]);

  const exported = loadHfModel(out);
  expect(exported.graph.layers).toHaveLength(2);
  expect(exported.config.numLayers).toBe(2);
  const before = await runDirect(onnxFile(ZERO_LAYER_DIR), IDS);
  const after = await runDirect(onnxFile(out), IDS);
  expect(maxAbsDiff(after.output, before.output)).toBeLessThanOrEqual(1e-5);
  // transformers.js builds the cache names from the layer count: they must be contiguous.
  expect(after.inputs.filter((n) => n.startsWith('past_key_values.'))).toEqual([
    'past_key_values.0.key',
    'past_key_values.0.value',
    'past_key_values.1.key',
    'past_key_values.1.value',
  ]);

  const pruned = await generateBothWays(out, 'fp32');
  const original = await generateBothWays(ZERO_LAYER_DIR, 'fp32');
  expect(pruned.cached).toEqual(pruned.reference);
  expect(pruned.cached).toEqual(original.cached);
});

test('a post-norm encoder with a layer dropped loads, runs and has fewer layers', async () => {
  const source = loadHfModel(fixturePath('bert-planted'));
  const out = join(root.dir, 'bert-layer-dropped');
  await exportPrunedModel(fixturePath('bert-planted'), planFor(source.graph, { 1: { dropped: true } }), out);
  const exported = loadHfModel(out);
  expect(exported.graph.layers).toHaveLength(source.graph.layers.length - 1);
  expect(exported.config.raw['num_hidden_layers']).toBe(source.graph.layers.length - 1);
  const extractor = await loadPipeline('feature-extraction', out);
  try {
    const output = await extractor(TEXT);
    expect(output.dims[2]).toBe(source.graph.hiddenSize);
    expect(allFinite(output.data)).toBe(true);
  } finally {
    await extractor.dispose();
  }
});
