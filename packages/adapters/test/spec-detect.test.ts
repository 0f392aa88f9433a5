import { countParams } from '@zerolm/core';
import { detectSpecFormat, parseZerolmSpec, specToGraph, zerolmSpecToGraph } from '../src';

const flexibert = {
  id: 3,
  scores: { glue: 70 },
  hparams: {
    model_hparam_overrides: {
      hidden_size: 128,
      nas_config: {
        encoder_layers: [
          { operation_type: 'LT', operation_parameter: 'DCT', num_operation_heads: 2, feed_forward_dimension: 512, num_feed_forward: 3 },
        ],
      },
    },
  },
};

const ltsConfig = {
  n_layer: 2,
  d_model: 64,
  n_head: [2, 4],
  d_inner: [128, 256],
  n_token: 1000,
  d_embed: 64,
  div_val: 1,
  cutoffs: [],
  tie_projs: [],
  adaptive: false,
  tgt_len: 32,
  weight_init_std: 0.02,
};

const zerolmSpec = {
  format: 'zerolm-spec',
  name: 'tiny-gqa',
  hiddenSize: 64,
  layers: [
    { heads: 8, kvHeads: 2, headDim: 8, ffnWidth: 172, gated: true, repeat: 2 },
    { heads: 4, headDim: 16, ffnWidth: 256 },
  ],
  init: { kind: 'normal', std: 0.02 },
  initByRole: { o: { kind: 'normal', std: 0.005 }, down: { kind: 'uniform', bound: 0.01 } },
};

describe('specToGraph', () => {
  it('recognises a FlexiBERT entry, an LTS entry, a bare LTS model_config and a zerolm-spec', () => {
    expect(detectSpecFormat(flexibert)).toBe('flexibert');
    expect(specToGraph(flexibert).family).toBe('flexibert');
    expect(specToGraph(flexibert, { flexibertDimensions: 'declared' }).hiddenSize).toBe(128);

    expect(detectSpecFormat({ id: 'c', model_config: ltsConfig })).toBe('lts-gpt2');
    const lts = specToGraph({ id: 'c', model_config: ltsConfig });
    expect([lts.family, lts.name, lts.layers.length]).toEqual(['lts-gpt2', 'c', 2]);
    expect(detectSpecFormat(ltsConfig)).toBe('lts-gpt2');
    expect(specToGraph(ltsConfig).name).toBe('lts-gpt2');

    expect(detectSpecFormat(zerolmSpec)).toBe('zerolm-spec');
    expect(specToGraph(zerolmSpec).layers).toHaveLength(3);
  });

  it('passes the seed through', () => {
    const a = specToGraph(zerolmSpec).layers[0]!.attention.matrices[0]!.values();
    const b = specToGraph(zerolmSpec, { seed: 'other' }).layers[0]!.attention.matrices[0]!.values();
    expect(a).not.toEqual(b);
  });

  it('throws a clear error naming the accepted formats for anything else', () => {
    expect(detectSpecFormat({ hello: 1 })).toBeUndefined();
    expect(() => specToGraph({ hello: 1, world: 2 })).toThrow(
      /unrecognised architecture spec \(got an object with keys hello, world\); expected a FlexiBERT benchmark entry .* an LTS GPT-2 entry .* or a zerolm-spec document/,
    );
    expect(() => specToGraph(null)).toThrow(/got null/);
    expect(() => specToGraph('spec.json')).toThrow(/got "spec.json"/);
    expect(() => specToGraph([flexibert, flexibert])).toThrow(/got an array of 2 .*loadFlexibertBenchmark/);
    expect(() => specToGraph({ format: 'onnx' })).toThrow(/unknown spec format "onnx"; expected "zerolm-spec"/);
  });

  it('reports the bad field of a recognised but malformed spec', () => {
    expect(() => specToGraph({ id: 'c', model_config: { ...ltsConfig, d_model: -1 } })).toThrow(/model_config.d_model/);
    expect(() => specToGraph({ id: 'c', model_config: {} })).toThrow(/LTS entry \(id c\): model_config.n_layer must be an integer/);
    expect(() => specToGraph({ ...zerolmSpec, layers: [{ heads: 8, kvHeads: 3, headDim: 8, ffnWidth: 16 }] })).toThrow(
      /layers\[0\]\.kvHeads \(3\) must divide heads \(8\)/,
    );
  });
});

describe('zerolm-spec', () => {
  const graph = zerolmSpecToGraph(parseZerolmSpec(zerolmSpec));

  it('builds grouped-query attention and gated FFNs with the declared shapes', () => {
    const first = graph.layers[0]!;
    expect([first.attention.heads, first.attention.kvHeads, first.attention.headDim]).toEqual([8, 2, 8]);
    expect(first.attention.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([
      ['q', 64, 64],
      ['k', 64, 16],
      ['v', 64, 16],
      ['o', 64, 64],
    ]);
    expect(first.ffn.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([
      ['up', 64, 172],
      ['gate', 64, 172],
      ['down', 172, 64],
    ]);
    expect(first.ffn.activation).toBe('silu');
    const last = graph.layers[2]!;
    expect(last.attention.kvHeads).toBe(4);
    expect(last.ffn.matrices.map((m) => m.role)).toEqual(['up', 'down']);
    expect(last.ffn.activation).toBe('gelu');
  });

  it('applies per-role inits and counts no biases unless asked', () => {
    const roles = Object.fromEntries(
      [...graph.layers[0]!.attention.matrices, ...graph.layers[0]!.ffn.matrices].map((m) => [m.role, m.init]),
    );
    expect(roles['q']).toEqual({ kind: 'normal', std: 0.02 });
    expect(roles['o']).toEqual({ kind: 'normal', std: 0.005 });
    expect(roles['down']).toEqual({ kind: 'uniform', bound: 0.01 });
    expect(countParams(graph).attention).toBe(2 * (64 * 64 * 2 + 64 * 16 * 2) + 4 * 64 * 64);
    expect(countParams(graph).total).toBeUndefined();
    const withBias = zerolmSpecToGraph(parseZerolmSpec({ ...zerolmSpec, bias: true, otherParams: 10 }));
    expect(countParams(withBias).attention).toBe(countParams(graph).attention + 2 * (64 + 16 + 16 + 64) + (3 * 64 + 64));
    expect(countParams(withBias).total).toBe(countParams(withBias).modules + 10);
  });

  it('rejects unknown fields, roles and init kinds', () => {
    expect(() => parseZerolmSpec({ ...zerolmSpec, hidden: 3 })).toThrow(/unknown field "hidden" \(allowed: format, name/);
    expect(() => parseZerolmSpec({ ...zerolmSpec, layers: [{ heads: 1, headDim: 1, ffnWidth: 1, width: 2 }] })).toThrow(
      /layers\[0\]: unknown field "width"/,
    );
    expect(() => parseZerolmSpec({ ...zerolmSpec, initByRole: { mlp: { kind: 'zeros' } } })).toThrow(/unknown role "mlp"/);
    expect(() => parseZerolmSpec({ ...zerolmSpec, init: { kind: 'xavier' } })).toThrow(
      /zerolm-spec.init.kind must be one of normal, truncated-normal, uniform, zeros \(got "xavier"\)/,
    );
    expect(() => parseZerolmSpec({ ...zerolmSpec, layers: [] })).toThrow(/at least one layer/);
  });
});
