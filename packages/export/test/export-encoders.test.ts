/**
 * The exporter on every encoder family's fixture (BERT at opset 17, DistilBERT and RoBERTa with
 * torch's LayerNorm decomposition, ELECTRA with its embedding projection, a non-uniform BERT):
 * a non-uniform plan exports a folder that transformers.js' feature-extraction pipeline loads,
 * which computes the sub-network (the source with the removed units zeroed) and whose module
 * graph is exactly `prunedGraph` of the source; a keep-everything plan reproduces the source's
 * hidden states bit for bit.
 */
import { join } from 'path';
import { prunedGraph } from '@zerolm/core';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import {
  allFinite,
  expectSameModuleGraph,
  loadHfModel,
  loadPipeline,
  maxAbsDiff,
  nonUniformPlan,
  onnxFile,
  planFor,
  runDirect,
  sameBytes,
  tempRoot,
  TEXT,
  writeMaskedReference,
} from './export-helpers';

const ENCODERS = ['bert-tiny', 'distilbert-tiny', 'roberta-tiny', 'electra-tiny', 'bert-nonuniform'] as const;

const root = tempRoot('export-encoders');
beforeAll(() => ensureFixtures([...ENCODERS]));
afterAll(() => root.remove());

describe.each(ENCODERS)('%s', (name) => {
  test('a non-uniform plan exports a model the feature-extraction pipeline runs, equal to prunedGraph', async () => {
    const source = loadHfModel(fixturePath(name));
    const plan = nonUniformPlan(source.graph);
    const out = join(root.dir, `${name}-pruned`);
    const result = await exportPrunedModel(fixturePath(name), plan, out);
    expect(result.params.after).toBeLessThan(result.params.before);
    expect(result.layers.map((l) => l.heads)).toEqual(plan.layers.map((l) => l.keptGroups.length));
    // Layers end up with different head counts (the non-uniform fixture starts that way already).
    expect(new Set([...result.layers.map((l) => l.heads), ...source.graph.layers.map((l) => l.attention.heads)]).size).toBeGreaterThan(2);

    const exported = loadHfModel(out);
    expectSameModuleGraph(exported, prunedGraph(source.graph, plan), source, plan);

    const extractor = await loadPipeline('feature-extraction', out);
    try {
      const output = await extractor(TEXT);
      const ids: number[] = Array.from(extractor.tokenizer(TEXT).input_ids.data as BigInt64Array, Number);
      expect(output.dims).toEqual([1, ids.length, source.graph.hiddenSize]);
      expect(allFinite(output.data)).toBe(true);
      const direct = await runDirect(onnxFile(out), ids);
      expect(maxAbsDiff(output.data, direct.output)).toBeLessThan(1e-5);

      const masked = join(root.dir, `${name}-masked`);
      writeMaskedReference(fixturePath(name), plan, masked);
      const reference = await runDirect(onnxFile(masked), ids);
      expect(maxAbsDiff(direct.output, reference.output)).toBeLessThan(1e-4);
    } finally {
      await extractor.dispose();
    }
  });

  test('keeping everything reproduces the hidden states exactly', async () => {
    const source = loadHfModel(fixturePath(name));
    const out = join(root.dir, `${name}-all`);
    await exportPrunedModel(fixturePath(name), planFor(source.graph), out);
    const ids = [2, 17, 40, 9, 33, 5, 61, 3];
    const before = await runDirect(onnxFile(fixturePath(name)), ids);
    const after = await runDirect(onnxFile(out), ids);
    expect(sameBytes(after.output, before.output)).toBe(true);
  });
});
