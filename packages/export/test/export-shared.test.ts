/**
 * The exporter on the two real torch.onnx exports of trained decoders (shared data): their
 * graphs carry head counts in Constant nodes (heads, kv heads, n_rep, head_dim, heads*head_dim)
 * and GPT-2's c_attn is a MatMul + Add cut by a Split-sizes Constant. A non-uniform plan (with a
 * dropped layer) exports folders that transformers.js loads and generates with, that compute the
 * sub-network, and that map back to `prunedGraph` of the source.
 */
import { join } from 'path';
import { prunedGraph } from '@zerolm/core';
import { describeShared, sharedPaths } from '../../adapters/test/shared-data';
import { exportPrunedModel } from '../src';
import {
  expectSameModuleGraph,
  generateBothWays,
  loadHfModel,
  maxAbsDiff,
  onnxFile,
  planFor,
  runDirect,
  tempRoot,
  writeMaskedReference,
} from './export-helpers';

const LLAMA = join(sharedPaths.modelsDir, 'kjv-llama-tiny');
const GPT2 = join(sharedPaths.modelsDir, 'kjv-gpt2-tiny');
const IDS = [2, 8, 15, 4, 99, 23, 7, 310, 12];

describeShared(
  'exporting the shared trained decoders',
  () => {
    const root = tempRoot('export-shared');
    afterAll(() => root.remove());

    const cases = [
      {
        name: 'kjv-llama-tiny',
        dir: LLAMA,
        // GQA 6/2 (n_rep 3): one group left in layer 0, both in layer 2, layer 1 dropped.
        choices: (width: number) => ({
          0: { groups: [1], neurons: Array.from({ length: width }, (_, j) => j).filter((j) => j % 4 !== 0) },
          1: { dropped: true },
          2: { neurons: Array.from({ length: width / 2 }, (_, j) => 2 * j) },
        }),
        heads: [3, 6],
      },
      {
        name: 'kjv-gpt2-tiny',
        dir: GPT2,
        choices: (width: number) => ({
          0: { groups: [0, 2, 3], neurons: Array.from({ length: width }, (_, j) => j).filter((j) => j % 3 !== 1) },
          1: { groups: [1] },
          2: { groups: [0, 1, 2, 3], neurons: Array.from({ length: width - 10 }, (_, j) => j + 10) },
        }),
        heads: [3, 1, 4],
      },
    ];

    test.each(cases)('$name: a non-uniform plan exports, loads in transformers.js and generates', async ({ name, dir, choices, heads }) => {
      const source = loadHfModel(dir);
      const plan = planFor(source.graph, choices(source.graph.layers[0]!.ffn.width));
      const out = join(root.dir, `${name}-pruned`);
      const result = await exportPrunedModel(dir, plan, out, { files: { 'plan.json': JSON.stringify(plan) } });
      expect(result.files).toEqual(expect.arrayContaining(['heldout.txt', 'tokenizer.json', 'plan.json', 'onnx/model.onnx']));

      const exported = loadHfModel(out);
      expect(exported.graph.layers.map((l) => l.attention.heads)).toEqual(heads);
      expectSameModuleGraph(exported, prunedGraph(source.graph, plan), source, plan);

      const masked = join(root.dir, `${name}-masked`);
      writeMaskedReference(dir, plan, masked);
      const pruned = await runDirect(onnxFile(out), IDS);
      const reference = await runDirect(onnxFile(masked), IDS);
      expect(maxAbsDiff(pruned.output, reference.output)).toBeLessThan(1e-4);

      const { cached, reference: fullContext } = await generateBothWays(out, 'fp32', 10);
      expect(cached).toEqual(fullContext);
      expect(cached.length).toBeGreaterThanOrEqual(4);
    });
  },
  [LLAMA, GPT2],
);
