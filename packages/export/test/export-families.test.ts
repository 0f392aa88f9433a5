/**
 * Pruning every family added after the first eight, on its generator fixture: removing the
 * planted all-zero units changes the outputs by at most 1e-5; a non-uniform plan exports exactly
 * `prunedGraph` of the source with config.json's keys consistent with the graph (the largest
 * head counts, key-value heads and width over layers, `head_dim`, per-layer lists), loads in
 * transformers.js (decoders: cached `generate` equals a full-context greedy loop; encoders: their
 * pipeline), and computes the source with the removed units zeroed (except where a norm over the
 * projection's width sees the removed units, OLMo 2's q/k norms: exact for zero units only).
 */
import { join } from 'path';
import { prunedGraph } from '@zerolm/core';
import { findFamily } from '@zerolm/adapters';
import { DEFAULT_FIXTURES, ensureFixtures, FAMILY_FIXTURES, fixturePath, resolveSpec } from '@zerolm/test-fixtures';
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
  tempRoot,
  TEXT,
  writeMaskedReference,
} from './export-helpers';

const IDS = [2, 17, 40, 9, 33, 5, 61, 12, 3];
/** Families whose q/k norm spans the projection's width: the pruned model is exact only for zero units. */
const WIDTH_NORMED = new Set(['olmo2']);

const root = tempRoot('export-families');
beforeAll(() => ensureFixtures([...FAMILY_FIXTURES]));
afterAll(() => root.remove());

describe.each(FAMILY_FIXTURES)('%s', (name) => {
  const spec = resolveSpec(DEFAULT_FIXTURES[name]);
  const decoder = spec.task === 'text-generation';

  test('removing exactly the planted units changes the outputs by at most 1e-5', async () => {
    const { source, plan } = plantedPlan(name);
    const out = join(root.dir, `${name}-planted`);
    const result = await exportPrunedModel(fixturePath(name), plan, out);
    expect(result.params.after).toBeLessThan(result.params.before);
    expect(result.layers.some((l, i) => l.kvHeads < source.graph.layers[i]!.attention.kvHeads)).toBe(true);
    const before = await runDirect(onnxFile(fixturePath(name)), IDS);
    const after = await runDirect(onnxFile(out), IDS);
    expect(after.dims).toEqual(before.dims);
    expect(maxAbsDiff(after.output, before.output)).toBeLessThanOrEqual(1e-5);
  });

  test('a non-uniform plan: prunedGraph, config keys consistent with the graph, transformers.js, the sub-network', async () => {
    const source = loadHfModel(fixturePath(name));
    const plan = nonUniformPlan(source.graph);
    const out = join(root.dir, `${name}-pruned`);
    await exportPrunedModel(fixturePath(name), plan, out);
    const exported = loadHfModel(out);
    expectSameModuleGraph(exported, prunedGraph(source.graph, plan), source, plan);

    const family = findFamily(spec.family)!;
    const raw = exported.config.raw;
    const layers = exported.graph.layers;
    expect(raw[family.keys.heads[0]!]).toBe(Math.max(...layers.map((l) => l.attention.heads)));
    if (family.keys.kvHeads) expect(raw[family.keys.kvHeads[0]!]).toBe(Math.max(...layers.map((l) => l.attention.kvHeads)));
    expect(raw[family.keys.ffnWidth[0]!]).toBe(Math.max(...layers.map((l) => l.ffn.width)));
    if (family.writesHeadDim) expect(raw['head_dim']).toBe(spec.headDim);
    expect((raw['zerolm'] as { layers: unknown[] }).layers).toHaveLength(layers.length);

    if (!WIDTH_NORMED.has(spec.family)) {
      const masked = join(root.dir, `${name}-masked`);
      writeMaskedReference(fixturePath(name), plan, masked);
      const after = await runDirect(onnxFile(out), IDS);
      const reference = await runDirect(onnxFile(masked), IDS);
      expect(maxAbsDiff(after.output, reference.output)).toBeLessThan(1e-4);
    }
    if (decoder) {
      const { cached, reference } = await generateBothWays(out, 'fp32');
      expect(cached).toEqual(reference);
      expect(cached.length).toBeGreaterThanOrEqual(4);
    } else if (spec.task === 'fill-mask') {
      const fill = await loadPipeline('fill-mask', out);
      try {
        const [best] = await fill('the keeper of the [MASK] found the farm', { top_k: 1 });
        expect(best.score).toBeGreaterThan(0);
      } finally {
        await fill.dispose();
      }
    } else {
      const extractor = await loadPipeline('feature-extraction', out);
      try {
        const output = await extractor(TEXT);
        expect(allFinite(output.data)).toBe(true);
      } finally {
        await extractor.dispose();
      }
    }
  });
});

test('smollm3: dropping a layer re-indexes no_rope_layers with the kept layers', async () => {
  const source = loadHfModel(fixturePath('smollm3-tiny'));
  const out = join(root.dir, 'smollm3-dropped');
  await exportPrunedModel(fixturePath('smollm3-tiny'), planFor(source.graph, { 0: { dropped: true } }), out);
  const before = source.config.raw['no_rope_layers'] as number[];
  expect(loadHfModel(out).config.raw['no_rope_layers']).toEqual(before.slice(1));
  const { cached, reference } = await generateBothWays(out, 'fp32');
  expect(cached).toEqual(reference);
});
