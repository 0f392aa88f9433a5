/**
 * Task heads after the last layer are heads, not layers: the masked-LM head of a fill-mask export
 * (dense, GELU, LayerNorm, tied decoder), a decoder's LM head. They are found from the structure,
 * left out of the layers' modules, and their parameters are counted apart, as the file stores
 * them. Checked on the generator's BertForMaskedLM export and, when the shared data is present,
 * on the trained kjv-bert-tiny (a real torch.onnx fill-mask export with two outputs).
 */
import { countParams } from '@zerolm/core';
import { GraphIndex, loadModel } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as path from 'path';
import { loadHfModel } from '../src';
import { describeShared, sharedPaths } from './shared-data';

beforeAll(() => ensureFixtures(['bert-mlm-tiny', 'bert-tiny', 'llama-tiny', 'gpt2-tiny']));

/**
 * Elements of the float initializers read only by nodes the predicate selects by node name (the
 * exporter's module scopes: the ground truth of which nodes are the head).
 */
function sizeReadBy(file: string, selectNode: (name: string) => boolean): number {
  const graph = loadModel(file).model.graph!;
  const index = new GraphIndex(graph);
  return graph.initializer
    .filter((t) => t.dataType === 1 && index.consumers(t.name!).length > 0 && index.consumers(t.name!).every((n) => selectNode(n.name ?? '')))
    .reduce((sum, t) => sum + t.dims.reduce((a, b) => a * Number(b), 1), 0);
}

describe('task heads', () => {
  it.each(['fp32', 'q8'] as const)('a BertForMaskedLM fill-mask export (%s): two layers, one masked-LM head, counted apart', (dtype) => {
    const model = loadHfModel(fixturePath('bert-mlm-tiny'), { dtype });
    const spec = (model.config.raw['zerolm_fixture'] as { spec: { layers: number; hidden: number; ffn: number; vocab: number } }).spec;
    expect(model.graph.layers).toHaveLength(spec.layers);
    for (const layer of model.graph.layers) {
      expect(layer.attention.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([
        ['q', 32, 32], ['k', 32, 32], ['v', 32, 32], ['o', 32, 32],
      ]);
      expect(layer.ffn.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([['up', 32, spec.ffn], ['down', spec.ffn, 32]]);
    }
    expect(model.graph.heads!.map((h) => [h.kind, h.matrices.map((m) => [m.rows, m.cols])])).toEqual([
      ['masked-lm', [[spec.hidden, spec.hidden], [spec.hidden, spec.vocab]]],
    ]);
    // dense weight and bias, LayerNorm, decoder weight (the tied copy) and bias: what the /cls/ nodes read.
    if (dtype === 'fp32') expect(countParams(model.graph).heads).toBe(sizeReadBy(model.file, (n) => n.startsWith('/cls/')));
    const counts = countParams(model.graph);
    expect(counts.heads).toBeLessThan(counts.total! - counts.modules);
  });

  it('a decoder LM head is a head; a feature-extraction export has none', () => {
    for (const name of ['llama-tiny', 'gpt2-tiny']) {
      const model = loadHfModel(fixturePath(name));
      expect(model.graph.heads!.map((h) => [h.kind, h.matrices.map((m) => [m.rows, m.cols])])).toEqual([['lm', [[32, 384]]]]);
      expect(countParams(model.graph).heads).toBe(32 * 384);
    }
    const encoder = loadHfModel(fixturePath('bert-tiny'));
    expect(encoder.graph.heads).toEqual([]);
    expect(countParams(encoder.graph).heads).toBeUndefined();
  });
});

describeShared('task heads: the trained kjv-bert-tiny (BertForMaskedLM, logits and last_hidden_state)', () => {
  it('maps three layers and one masked-LM head', () => {
    const model = loadHfModel(path.join(sharedPaths.modelsDir, 'kjv-bert-tiny'));
    expect(model.graph.layers.map((l) => [l.attention.heads, l.attention.headDim, l.ffn.width])).toEqual([
      [4, 24, 384], [4, 24, 384], [4, 24, 384],
    ]);
    expect(model.graph.heads!.map((h) => [h.kind, h.matrices.map((m) => [m.rows, m.cols])])).toEqual([['masked-lm', [[96, 96], [96, 3000]]]]);
    // Its body lives under /bert/; the head's nodes sit at the root scope.
    expect(countParams(model.graph).heads).toBe(sizeReadBy(model.file, (n) => !n.startsWith('/bert/')));
    expect(countParams(model.graph).heads).toBe(96 * 96 + 96 + 2 * 96 + 96 * 3000 + 3000);
  });
});
