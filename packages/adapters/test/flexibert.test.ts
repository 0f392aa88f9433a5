import { countParams, moduleParams } from '@zerolm/core';
import {
  FLEXIBERT_METRIC_CONFIG,
  flexibertToGraph,
  loadFlexibertBaselines,
  loadFlexibertBenchmark,
  parseFlexibertEntry,
  type FlexibertEncoderLayer,
  type FlexibertEntry,
} from '../src';
import { describeShared, sharedPaths } from './shared-data';

function entryWith(layers: FlexibertEncoderLayer[], hiddenSize = 256): FlexibertEntry {
  return { id: 'test', hparams: { model_hparam_overrides: { hidden_size: hiddenSize, nas_config: { encoder_layers: layers } } } };
}

function layer(
  operation_type: FlexibertEncoderLayer['operation_type'],
  operation_parameter: string | number,
  num_operation_heads: number,
  num_feed_forward = 1,
  feed_forward_dimension = 512,
): FlexibertEncoderLayer {
  return { operation_type, operation_parameter, num_operation_heads, feed_forward_dimension, num_feed_forward };
}

// Parameter counts written out from the constructors in aaronserianni/training-free-nas
// modeling_electra.py (nn.Linear(i, o) has i*o + o parameters), independently of the adapter.
const H = 256;
const I = 1024;
const linear = (inputs: number, outputs: number, bias = true): number => inputs * outputs + (bias ? outputs : 0);

describe('flexibertToGraph: the metric code construction', () => {
  it('builds SA-SDP as q, k, v, o with biases, heads of hidden / num_operation_heads', () => {
    const graph = flexibertToGraph(entryWith([layer('SA', 'SDP', 4)]));
    const attention = graph.layers[0]!.attention;
    expect(attention.kind).toBe('attention');
    expect([attention.heads, attention.kvHeads, attention.headDim]).toEqual([4, 4, 64]);
    expect(attention.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([
      ['q', H, H],
      ['k', H, H],
      ['v', H, H],
      ['o', H, H],
    ]);
    expect(moduleParams(attention)).toBe(4 * linear(H, H));
  });

  it('adds the WMA bilinear weight (no bias) as a mix matrix', () => {
    const attention = flexibertToGraph(entryWith([layer('SA', 'WMA', 2)])).layers[0]!.attention;
    expect(attention.matrices.map((m) => m.role)).toEqual(['q', 'k', 'v', 'mix', 'o']);
    expect(attention.headDim).toBe(128);
    expect(moduleParams(attention)).toBe(4 * linear(H, H) + H * H);
  });

  it('builds LT (DFT and DCT) as one input projection, without output dense', () => {
    for (const parameter of ['DFT', 'DCT']) {
      const attention = flexibertToGraph(entryWith([layer('LT', parameter, 2)])).layers[0]!.attention;
      expect(attention.kind).toBe(parameter.toLowerCase());
      expect(attention.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([['mix', H, H]]);
      expect(moduleParams(attention)).toBe(linear(H, H));
    }
  });

  it.each([
    [5, 4],
    [9, 2],
    [5, 2],
    [9, 4],
  ])('builds DSC with kernel %i and %i operation heads as ConvBERT-style mixed attention', (kernel, heads) => {
    const attentionHeads = Math.max(1, Math.floor(heads / 2));
    const headSize = Math.floor(H / heads);
    const all = attentionHeads * headSize;
    const attention = flexibertToGraph(entryWith([layer('DSC', kernel, heads)])).layers[0]!.attention;
    expect(attention.kind).toBe('dsc');
    expect([attention.heads, attention.headDim]).toEqual([attentionHeads, headSize]);
    const expected =
      3 * linear(H, all) + // query, key, value
      H * kernel + // depthwise conv, groups = hidden, no bias
      H * all + // pointwise conv, no bias
      all + // separable conv bias
      linear(all, attentionHeads * kernel) + // conv_kernel_layer
      linear(H, all) + // conv_out_layer
      linear(H, H); // output.dense
    expect(moduleParams(attention)).toBe(expected);
    const depthwise = attention.matrices.find((m) => m.name.endsWith('depthwise.weight'))!;
    expect([depthwise.rows, depthwise.cols]).toEqual([kernel, H]);
  });

  it('puts the whole stacked FFN in the FFN module: dense_in, num_feed_forward - 1 square layers, output', () => {
    const graph = flexibertToGraph(entryWith([layer('SA', 'SDP', 4, 3, 512)]));
    const ffn = graph.layers[0]!.ffn;
    expect(ffn.width).toBe(I); // feed_forward_dimension 512 is not applied
    expect(ffn.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([
      ['up', H, I],
      ['up', I, I],
      ['up', I, I],
      ['down', I, H],
    ]);
    expect(moduleParams(ffn)).toBe(linear(H, I) + 2 * linear(I, I) + linear(I, H));
  });

  it('counts embeddings, the embedding projection and every LayerNorm outside the modules', () => {
    const graph = flexibertToGraph(entryWith([layer('SA', 'SDP', 4), layer('LT', 'DFT', 2), layer('DSC', 5, 4)]));
    const embeddings = (30522 + 512 + 2) * 128 + 2 * 128 + linear(128, H);
    const layerNorms = 2 * H /* SA output */ + 2 * H /* DSC output */ + 3 * 2 * H; /* one per FFN output */
    expect(graph.otherParams).toBe(embeddings + layerNorms);
    expect(graph.hiddenSize).toBe(FLEXIBERT_METRIC_CONFIG.hiddenSize);
    expect(graph.family).toBe('flexibert');
  });

  it('ignores the declared hidden size by default and applies it with dimensions: declared', () => {
    const entry = entryWith([layer('SA', 'SDP', 4, 1, 512)], 128);
    expect(flexibertToGraph(entry).hiddenSize).toBe(256);
    const declared = flexibertToGraph(entry, { dimensions: 'declared' });
    expect(declared.hiddenSize).toBe(128);
    expect(declared.layers[0]!.ffn.width).toBe(512);
    expect(declared.layers[0]!.attention.matrices[0]!.rows).toBe(128);
    // Embedding size 128 equals the hidden size, so there is no embeddings_project.
    expect(declared.otherParams).toBe((30522 + 512 + 2) * 128 + 2 * 128 + 2 * 128 + 2 * 128);
  });

  it('rejects malformed entries with the path of the bad field', () => {
    const good = { id: 7, hparams: { model_hparam_overrides: { hidden_size: 256, nas_config: { encoder_layers: [layer('SA', 'SDP', 4)] } } } };
    expect(parseFlexibertEntry(good).id).toBe(7);
    const withLayer = (l: unknown) => ({ ...good, hparams: { model_hparam_overrides: { hidden_size: 256, nas_config: { encoder_layers: [l] } } } });
    expect(() => parseFlexibertEntry(withLayer({ ...layer('SA', 'SDP', 4), operation_type: 'XX' }))).toThrow(
      /encoder_layers\[0\]\.operation_type must be one of SA, LT, DSC \(got "XX"\)/,
    );
    expect(() => parseFlexibertEntry(withLayer({ ...layer('DSC', 5, 4), operation_parameter: 'five' }))).toThrow(
      /DSC kernel size/,
    );
    expect(() => parseFlexibertEntry(withLayer({ ...layer('SA', 'DFT', 4) }))).toThrow(/SDP or WMA/);
    expect(() => parseFlexibertEntry(withLayer({ ...layer('SA', 'SDP', 4), num_feed_forward: 0 }))).toThrow(
      /num_feed_forward must be an integer >= 1/,
    );
    expect(() => parseFlexibertEntry({ id: 3, hparams: {} })).toThrow(/\(id 3\): hparams.model_hparam_overrides must be an object/);
  });
});

describeShared(
  'FlexiBERT public benchmark: parameter counts',
  () => {
    it('reproduces "Number of Parameters" of every public architecture exactly', () => {
      const records = loadFlexibertBenchmark(sharedPaths.flexibertBenchmark);
      const baselines = loadFlexibertBaselines(sharedPaths.flexibertBaselines);
      expect(records).toHaveLength(350);
      expect(baselines.byId.size).toBe(350);
      const mismatches: string[] = [];
      for (const record of records) {
        const published = baselines.byId.get(record.id)?.['Number of Parameters'];
        const built = countParams(flexibertToGraph(record.entry)).total;
        if (published === undefined || built !== published) mismatches.push(`${record.id}: built ${built}, published ${published}`);
      }
      expect(mismatches).toEqual([]);
    });
  },
  [sharedPaths.flexibertBenchmark, sharedPaths.flexibertBaselines],
);
