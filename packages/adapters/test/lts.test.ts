import { countParams } from '@zerolm/core';
import { cleanLtsCutoffs, loadLtsBenchmark, ltsOtherParams, ltsToGraph, parseLtsEntry } from '../src';
import { describeShared, sharedPaths } from './shared-data';

const baseConfig = {
  n_layer: 3,
  d_model: 128,
  n_head: [2, 4, 8],
  d_inner: [300, 512, 1000],
  d_head: -1,
  n_token: 50264,
  d_embed: 256,
  div_val: 4,
  cutoffs: [19997, 39997, 199997, 50264],
  tie_projs: [false, true, true, true],
  adaptive: true,
  tgt_len: 192,
  weight_init_std: 0.02,
  proj_init_std: 0.01,
  primer_square: false,
  primer_conv: false,
  attn_type: 0,
};

describe('ltsToGraph: archai HfGPT2Flex', () => {
  const graph = ltsToGraph(parseLtsEntry({ id: 'unit', model_config: baseConfig, valid_ppl: 40 }));

  it('uses per-layer heads with head size d_model // n_head, whatever d_head says', () => {
    expect(graph.layers.map((l) => [l.attention.heads, l.attention.kvHeads, l.attention.headDim])).toEqual([
      [2, 2, 64],
      [4, 4, 32],
      [8, 8, 16],
    ]);
    const withDHead = ltsToGraph(parseLtsEntry({ id: 'd', model_config: { ...baseConfig, d_head: 7 } }));
    expect(withDHead.layers[0]!.attention.headDim).toBe(64);
  });

  it('splits c_attn into q, k, v and keeps biases; FFN is c_fc and c_proj with per-layer width', () => {
    const attention = graph.layers[1]!.attention;
    expect(attention.matrices.map((m) => [m.role, m.rows, m.cols])).toEqual([
      ['q', 128, 128],
      ['k', 128, 128],
      ['v', 128, 128],
      ['o', 128, 128],
    ]);
    const counts = countParams(graph);
    // GPT2Attention: Conv1D(3d, d) + Conv1D(d, d); GPT2MLPFlex: Conv1D(inner, d) + Conv1D(d, inner).
    expect(counts.attention).toBe(3 * (128 * 384 + 384 + 128 * 128 + 128));
    expect(counts.ffn).toBe([300, 512, 1000].reduce((sum, w) => sum + 2 * 128 * w + w + 128, 0));
    expect(graph.layers.map((l) => l.ffn.width)).toEqual([300, 512, 1000]);
  });

  it('draws c_proj weights with weight_init_std / sqrt(2 n_layer), the rest with weight_init_std', () => {
    const layer = graph.layers[0]!;
    const stds = [...layer.attention.matrices, ...layer.ffn.matrices].map((m) => [
      m.name,
      m.init?.kind === 'normal' ? m.init.std : undefined,
    ]);
    const scaled = 0.02 / Math.sqrt(6);
    expect(stds).toEqual([
      ['transformer.h.0.attn.c_attn.weight[q]', 0.02],
      ['transformer.h.0.attn.c_attn.weight[k]', 0.02],
      ['transformer.h.0.attn.c_attn.weight[v]', 0.02],
      ['transformer.h.0.attn.c_proj.weight', scaled],
      ['transformer.h.0.mlp.c_fc.weight', 0.02],
      ['transformer.h.0.mlp.c_proj.weight', scaled],
    ]);
  });

  it('cleans cutoffs the way archai does (trim at the first cutoff beyond the vocabulary)', () => {
    expect(cleanLtsCutoffs([19997, 39997, 199997, 50264], 50264)).toEqual([19997, 39997, 50264]);
    expect(cleanLtsCutoffs([], 1000)).toEqual([1000]);
    expect(cleanLtsCutoffs([100, 200], 1000)).toEqual([100, 200, 1000]);
    expect(() => cleanLtsCutoffs([200, 100], 1000)).toThrow(/must increase/);
  });

  it('counts the adaptive embedding, softmax and LayerNorms outside the modules', () => {
    // div_val 4, d_embed 256, d_model 128, clusters [0, 19997), [19997, 39997), [39997, 50264).
    const widths = [256, 64, 16];
    const sizes = [19997, 20000, 10267];
    const embedding = 192 * 128 + sizes.reduce((sum, n, i) => sum + n * widths[i]! + 128 * widths[i]!, 0);
    const softmax = 50264 + 2 * 256 + 2 + 128 * 256; // biases, cluster weight/bias, untied head projection
    const layerNorm = (4 * 3 + 2) * 128;
    expect(ltsOtherParams(parseLtsEntry({ id: 'x', model_config: baseConfig }).model_config)).toEqual({
      embedding,
      softmax,
      layerNorm,
    });
    expect(graph.otherParams).toBe(embedding + softmax + layerNorm);
  });

  it('accepts scalar n_head / d_inner and a bare model_config', () => {
    const bare = parseLtsEntry({ ...baseConfig, n_head: 4, d_inner: 256 }, 'config', 'bare');
    expect(bare.id).toBe('bare');
    expect(bare.model_config.n_head).toEqual([4, 4, 4]);
    expect(bare.model_config.d_inner).toEqual([256, 256, 256]);
  });

  it('rejects configs it cannot build, naming the field', () => {
    expect(() => parseLtsEntry({ id: 'a', model_config: { ...baseConfig, n_head: [2, 3, 4] } })).toThrow(
      /n_head\[1\]: d_model 128 is not divisible by 3 heads/,
    );
    expect(() => parseLtsEntry({ id: 'a', model_config: { ...baseConfig, d_inner: [1, 2] } })).toThrow(
      /d_inner must list one value per layer \(3\), got 2/,
    );
    expect(() => parseLtsEntry({ id: 'a', model_config: { ...baseConfig, primer_conv: true } })).toThrow(/primer_conv/);
    expect(() => parseLtsEntry({ id: 'a', model_config: { ...baseConfig, weight_init_std: 'x' } })).toThrow(
      /\(id a\): model_config.weight_init_std must be a finite number/,
    );
  });
});

describeShared(
  'LTS GPT-2 benchmark: parameter counts',
  () => {
    it('reproduces params.Attn and params.FFN of all 200 architectures exactly, and params.total', () => {
      const records = loadLtsBenchmark(sharedPaths.ltsBenchmark);
      expect(records).toHaveLength(200);
      const mismatches: string[] = [];
      for (const record of records) {
        const counts = countParams(ltsToGraph(record.entry));
        const params = record.params!;
        if (counts.attention !== params['Attn']) mismatches.push(`${record.id} Attn: ${counts.attention} vs ${params['Attn']}`);
        if (counts.ffn !== params['FFN']) mismatches.push(`${record.id} FFN: ${counts.ffn} vs ${params['FFN']}`);
        if (counts.total !== params['total']) mismatches.push(`${record.id} total: ${counts.total} vs ${params['total']}`);
        const other = ltsOtherParams(record.entry.model_config);
        if (other.embedding !== params['AdaEmb']) mismatches.push(`${record.id} AdaEmb: ${other.embedding} vs ${params['AdaEmb']}`);
        if (counts.modules + other.layerNorm !== params['nonembedding']) mismatches.push(`${record.id} nonembedding`);
      }
      expect(mismatches).toEqual([]);
    });
  },
  [sharedPaths.ltsBenchmark],
);
