/**
 * Fill-mask exports (BertForMaskedLM: the body, then the masked-LM head with its tied decoder):
 * the exporter prunes the layers and leaves the head whole. The pruned folder loads in
 * transformers.js' fill-mask pipeline and predicts what a direct onnxruntime run of the file
 * predicts; pruning the fixture's planted all-zero units changes the logits by at most 1e-5; a
 * non-uniform plan gives exactly `prunedGraph` and the logits of the source with the removed
 * units zeroed. The trained kjv-bert-tiny (shared data) is pruned the same way.
 */
import { join } from 'path';
import { countParams, prunedGraph } from '@zerolm/core';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { describeShared, sharedPaths } from '../../adapters/test/shared-data';
import { exportPrunedModel } from '../src';
import {
  expectSameModuleGraph,
  loadHfModel,
  loadPipeline,
  maxAbsDiff,
  nonUniformPlan,
  onnxFile,
  plantedPlan,
  runDirect,
  tempRoot,
  writeMaskedReference,
} from './export-helpers';

const root = tempRoot('export-fill-mask');
beforeAll(() => ensureFixtures(['bert-mlm-tiny']));
afterAll(() => root.remove());

/** The fill-mask pipeline's best token for the first [MASK] of `text`, and the argmax of a direct run's logits there. */
async function bothPredictions(dir: string, text: string): Promise<{ pipeline: number; direct: number }> {
  const fill = await loadPipeline('fill-mask', dir);
  try {
    const [best] = await fill(text, { top_k: 1 });
    const ids: number[] = Array.from(fill.tokenizer(text).input_ids.data as BigInt64Array, Number);
    const position = ids.indexOf(fill.tokenizer.mask_token_id);
    const { output, dims } = await runDirect(onnxFile(dir), ids);
    const vocab = dims[2]!;
    const row = output.subarray(position * vocab, (position + 1) * vocab);
    return { pipeline: best.token, direct: row.indexOf(Math.max(...row)) };
  } finally {
    await fill.dispose();
  }
}

async function checkExport(source: string, out: string, masked: string, text: string, ids: number[]): Promise<void> {
  const model = loadHfModel(source);
  const plan = nonUniformPlan(model.graph);
  const result = await exportPrunedModel(source, plan, out);
  expect(result.params.after).toBeLessThan(result.params.before);
  const exported = loadHfModel(out);
  expectSameModuleGraph(exported, prunedGraph(model.graph, plan), model, plan);
  // The head is the same head, whole.
  expect(exported.graph.heads).toEqual(model.graph.heads);
  expect(countParams(exported.graph).heads).toBe(countParams(model.graph).heads);

  const predicted = await bothPredictions(out, text);
  expect(predicted.pipeline).toBe(predicted.direct);

  writeMaskedReference(source, plan, masked);
  const after = await runDirect(onnxFile(out), ids);
  const reference = await runDirect(onnxFile(masked), ids);
  expect(after.dims).toEqual(reference.dims);
  expect(maxAbsDiff(after.output, reference.output)).toBeLessThan(1e-4);
}

describe('bert-mlm-tiny (fill-mask export)', () => {
  test('a non-uniform plan: the fill-mask pipeline predicts, the head is untouched, the logits are the sub-network\'s', async () => {
    await checkExport(fixturePath('bert-mlm-tiny'), join(root.dir, 'mlm-pruned'), join(root.dir, 'mlm-masked'), 'the keeper of the [MASK] found the farm', [2, 17, 40, 4, 33, 5, 61, 3]);
  });

  test('removing exactly the planted units changes the logits by at most 1e-5', async () => {
    const { source, plan } = plantedPlan('bert-mlm-tiny');
    const out = join(root.dir, 'mlm-planted');
    const result = await exportPrunedModel(fixturePath('bert-mlm-tiny'), plan, out);
    expect(result.layers.map((l) => [l.heads, l.ffnWidth])).toEqual([[3, 64], [4, 62]]);
    expect(source.graph.layers.map((l) => [l.attention.heads, l.ffn.width])).toEqual([[4, 64], [4, 64]]);
    const ids = [2, 17, 40, 4, 33, 5, 61, 12, 3];
    const before = await runDirect(onnxFile(fixturePath('bert-mlm-tiny')), ids);
    const after = await runDirect(onnxFile(out), ids);
    expect(after.dims).toEqual([1, ids.length, 384]);
    expect(maxAbsDiff(after.output, before.output)).toBeLessThanOrEqual(1e-5);
  });
});

const KJV_BERT = join(sharedPaths.modelsDir, 'kjv-bert-tiny');
describeShared('kjv-bert-tiny (trained, fill-mask)', () => {
  test('a non-uniform plan: the fill-mask pipeline predicts, the head is untouched, the logits are the sub-network\'s', async () => {
    await checkExport(KJV_BERT, join(root.dir, 'kjv-pruned'), join(root.dir, 'kjv-masked'), 'in the beginning god created the [MASK] and the earth', [2, 30, 8, 100, 4, 7, 9, 3]);
  });
}, [KJV_BERT]);
