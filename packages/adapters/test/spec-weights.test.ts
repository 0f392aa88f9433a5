import { type ModuleGraph, type WeightMatrix } from '@zerolm/core';
import { flexibertToGraph, ltsToGraph, parseLtsEntry, type FlexibertEntry, type SpecMatrixSource } from '../src';

// Built with `dimensions: 'declared'` (hidden 128, FFN 256) to keep the draws small: Rng runs
// several times slower inside Jest's VM context than in plain Node.
const flexibertEntry: FlexibertEntry = {
  id: 42,
  hparams: {
    model_hparam_overrides: {
      hidden_size: 128,
      nas_config: {
        encoder_layers: [
          { operation_type: 'SA', operation_parameter: 'WMA', num_operation_heads: 2, feed_forward_dimension: 256, num_feed_forward: 1 },
          { operation_type: 'DSC', operation_parameter: 5, num_operation_heads: 4, feed_forward_dimension: 256, num_feed_forward: 2 },
        ],
      },
    },
  },
};

const ltsEntry = parseLtsEntry({
  id: 'config_unit',
  model_config: {
    n_layer: 2,
    d_model: 64,
    n_head: [2, 8],
    d_inner: [128, 96],
    n_token: 1000,
    d_embed: 64,
    div_val: 1,
    cutoffs: [],
    tie_projs: [],
    adaptive: false,
    tgt_len: 32,
    weight_init_std: 0.02,
    proj_init_std: 0.01,
  },
});

const declared = { dimensions: 'declared' } as const;

/** Bitwise equality of two drawn arrays (Jest's deep equality is slow on large typed arrays). */
function sameValues(a: Float64Array | Float32Array, b: Float64Array | Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function allMatrices(graph: ModuleGraph): WeightMatrix[] {
  return graph.layers.flatMap((l) => [...l.attention.matrices, ...l.ffn.matrices]);
}

describe('spec weights: reproducible, identity-seeded, drawn from the declared init', () => {
  it('gives the same values on every call and for every rebuild of the graph', () => {
    const first = allMatrices(flexibertToGraph(flexibertEntry, declared));
    const second = allMatrices(flexibertToGraph(flexibertEntry, declared));
    for (let i = 0; i < first.length; i++) {
      const a = first[i]!.values();
      expect(a).toHaveLength(first[i]!.rows * first[i]!.cols);
      expect(sameValues(second[i]!.values(), a)).toBe(true);
      expect(sameValues(first[i]!.values(), a)).toBe(true);
    }
  });

  it('does not depend on the order (or subset) in which matrices are drawn', () => {
    const forward = allMatrices(ltsToGraph(ltsEntry)).map((m) => m.values());
    const backward = allMatrices(ltsToGraph(ltsEntry)).reverse().map((m) => m.values()).reverse();
    expect(backward.every((values, i) => sameValues(values, forward[i]!))).toBe(true);
    const lastOnly = allMatrices(ltsToGraph(ltsEntry)).pop()!.values();
    expect(sameValues(lastOnly, forward[forward.length - 1]!)).toBe(true);
  });

  it('draws different values for different matrices, architectures and seeds', () => {
    const graph = ltsToGraph(ltsEntry);
    const [q, k] = graph.layers[0]!.attention.matrices;
    expect(sameValues(q!.values(), k!.values())).toBe(false);
    const other = ltsToGraph({ ...ltsEntry, id: 'config_other' });
    expect(sameValues(other.layers[0]!.attention.matrices[0]!.values(), q!.values())).toBe(false);
    const reseeded = ltsToGraph(ltsEntry, { seed: 'run-2' });
    expect(sameValues(reseeded.layers[0]!.attention.matrices[0]!.values(), q!.values())).toBe(false);
    const source = q!.source as SpecMatrixSource;
    expect(source).toMatchObject({ format: 'lts-gpt2', architecture: 'config_unit', layer: 0 });
    expect(source.seed).toBe('lts-gpt2/config_unit/transformer.h.0.attn.c_attn.weight[q]');
  });

  it('matches the declared standard deviation (sample std within 5% on >= 4096 entries)', () => {
    let checked = 0;
    for (const m of [...allMatrices(flexibertToGraph(flexibertEntry, declared)), ...allMatrices(ltsToGraph(ltsEntry))]) {
      if (m.rows * m.cols < 4096 || m.init?.kind !== 'normal') continue;
      checked++;
      const v = m.values();
      let sum = 0;
      let squares = 0;
      for (let i = 0; i < v.length; i++) {
        sum += v[i]!;
        squares += v[i]! * v[i]!;
      }
      const mean = sum / v.length;
      const std = Math.sqrt(squares / v.length - mean * mean);
      expect(Math.abs(std / m.init.std - 1)).toBeLessThan(0.05); // sampling error ~1/sqrt(2n) <= 1.1%
      expect(Math.abs(mean)).toBeLessThan(4 * (m.init.std / Math.sqrt(v.length)));
    }
    expect(checked).toBeGreaterThan(20); // LTS c_proj (std 0.02 / sqrt(4)) among them
  });

  it('draws every FlexiBERT matrix, convolutions included, from N(0, 0.02^2)', () => {
    const stds = new Set(allMatrices(flexibertToGraph(flexibertEntry, declared)).map((m) => JSON.stringify(m.init)));
    expect([...stds]).toEqual([JSON.stringify({ kind: 'normal', std: 0.02 })]);
  });
});
