/**
 * Parameters that several layers read: torch.onnx deduplicates equal tensors of a freshly
 * initialised model (zero biases, unit norms) and hands them to their other users through
 * `Identity` nodes; graph optimizers (onnxslim) point every user at the one initializer instead.
 * Pruning gives each pruned user its own sliced copy and never changes what another layer reads:
 * the export equals `prunedGraph` of the source, computes the sub-network, loads in
 * transformers.js, and the source file is unchanged.
 */
import { createHash } from 'crypto';
import { cpSync, readFileSync } from 'fs';
import { join } from 'path';
import { prunedGraph } from '@zerolm/core';
import { GraphIndex, loadModel, saveModel } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import { expectSameModuleGraph, generateBothWays, loadHfModel, loadPipeline, maxAbsDiff, nonUniformPlan, onnxFile, runDirect, tempRoot, TEXT, writeMaskedReference } from './export-helpers';

const root = tempRoot('export-aliases');
beforeAll(() => ensureFixtures(['bert-dedup', 'gpt2-dedup']));
afterAll(() => root.remove());

const IDS = [2, 17, 40, 9, 33, 5, 61, 12, 3];

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** A copy of `source` with every Identity alias removed: its readers read the initializer itself. */
function withoutAliases(source: string, out: string): void {
  cpSync(source, out, { recursive: true });
  const { model } = loadModel(onnxFile(source));
  const graph = model.graph!;
  const alias = new Map(graph.node.filter((n) => n.opType === 'Identity').map((n) => [n.output[0]!, n.input[0]!]));
  graph.node = graph.node.filter((n) => n.opType !== 'Identity');
  for (const node of graph.node) node.input = node.input.map((i) => alias.get(i) ?? i);
  saveModel(model, onnxFile(out));
}

async function checkExport(source: string, name: string, decoder: boolean): Promise<void> {
  const before = sha(onnxFile(source));
  const model = loadHfModel(source);
  const plan = nonUniformPlan(model.graph);
  const out = join(root.dir, `${name}-pruned`);
  await exportPrunedModel(source, plan, out);
  expect(sha(onnxFile(source))).toBe(before);
  expectSameModuleGraph(loadHfModel(out), prunedGraph(model.graph, plan), model, plan);
  const masked = join(root.dir, `${name}-masked`);
  writeMaskedReference(source, plan, masked);
  const after = await runDirect(onnxFile(out), IDS);
  const reference = await runDirect(onnxFile(masked), IDS);
  expect(maxAbsDiff(after.output, reference.output)).toBeLessThan(1e-4);
  if (decoder) {
    const { cached, reference: greedy } = await generateBothWays(out, 'fp32');
    expect(cached).toEqual(greedy);
  } else {
    const extractor = await loadPipeline('feature-extraction', out);
    try {
      expect((await extractor(TEXT)).dims[2]).toBe(model.graph.hiddenSize);
    } finally {
      await extractor.dispose();
    }
  }
}

describe.each([
  ['bert-dedup', false],
  ['gpt2-dedup', true],
] as const)('%s', (name, decoder) => {
  test('its biases and norms reach later layers through Identity aliases', () => {
    const index = new GraphIndex(loadModel(onnxFile(fixturePath(name))).model.graph!);
    const model = loadHfModel(fixturePath(name));
    const aliased = model.graph.layers.flatMap((l) => [...l.attention.biases, ...l.ffn.biases]).filter((b) => index.producer(b.name)?.opType === 'Identity');
    expect(aliased.length).toBeGreaterThan(3);
  });

  test('a non-uniform plan through Identity aliases: each pruned user gets its own copy', async () => {
    await checkExport(fixturePath(name), name, decoder);
  });

  test('a non-uniform plan when one initializer feeds several layers directly', async () => {
    const shared = join(root.dir, `${name}-shared`);
    withoutAliases(fixturePath(name), shared);
    const index = new GraphIndex(loadModel(onnxFile(shared)).model.graph!);
    expect(index.graph.initializer.some((t) => index.consumers(t.name!).length > 3)).toBe(true);
    await checkExport(shared, `${name}-shared`, decoder);
  });
});
