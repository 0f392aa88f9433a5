import { specToGraph } from '@zerolm/adapters';
import type { ModuleGraph } from '@zerolm/core';
import {
  getImportance,
  listImportances,
  magnitudeImportance,
  planPrune,
  rankUnits,
  registerImportance,
  unitSliceNorms,
  type UnitImportance,
} from '../src';
import { fixtureGraph, PLANTED, plantedUnits } from './search-helpers';

describe('magnitude importance', () => {
  it.each(PLANTED)('ranks the planted all-zero units of %s last, with score 0', (name) => {
    const graph = fixtureGraph(name);
    const ranking = rankUnits(graph);
    expect(ranking.importance).toBe('magnitude');
    let checked = 0;
    graph.layers.forEach((layer, l) => {
      const a = layer.attention;
      const { groups, neurons } = plantedUnits(name, l, layer);
      const groupScores = magnitudeImportance.importance(layer, 'heads', { seed: 0 });
      const neuronScores = magnitudeImportance.importance(layer, 'ffn', { seed: 0 });
      expect(new Set(ranking.groups[l]!.slice(a.kvHeads - groups.length))).toEqual(new Set(groups));
      expect(new Set(ranking.neurons[l]!.slice(layer.ffn.width - neurons.length))).toEqual(new Set(neurons));
      for (const g of groups) expect(groupScores[g]).toBe(0);
      for (const j of neurons) expect(neuronScores[j]).toBe(0);
      // Everything else scores above zero.
      expect(Array.from(groupScores).filter((s) => s > 0)).toHaveLength(a.kvHeads - groups.length);
      expect(Array.from(neuronScores).filter((s) => s > 0)).toHaveLength(layer.ffn.width - neurons.length);
      checked += groups.length + neurons.length;
    });
    expect(checked).toBeGreaterThanOrEqual(4);
  });

  it('normalises each matrix by its mean unit value, so scaling one matrix changes nothing (x1024 is exact in float32)', () => {
    const graph = fixtureGraph('llama-planted');
    const layer = graph.layers[0]!;
    const base = magnitudeImportance.importance(layer, 'ffn', { seed: 0 });
    const slices = unitSliceNorms(layer, 'ffn');
    // Recompute by hand: sum_m norms_m[u] / mean(norms_m).
    const expected = new Float64Array(slices.units);
    for (const norms of slices.norms) {
      const mean = norms.reduce((s, v) => s + v, 0) / norms.length;
      norms.forEach((v, u) => (expected[u] += v / mean));
    }
    expect(Array.from(base)).toEqual(Array.from(expected));
    const up = layer.ffn.matrices.find((m) => m.role === 'up')!;
    const scaledUp = { ...up, values: () => up.values().map((v) => v * 1024) };
    const scaledLayer = { ...layer, ffn: { ...layer.ffn, matrices: layer.ffn.matrices.map((m) => (m === up ? scaledUp : m)) } };
    const scaled = magnitudeImportance.importance(scaledLayer, 'ffn', { seed: 0 });
    scaled.forEach((v, u) => expect(v).toBeCloseTo(base[u]!, 12));
  });
});

describe('importance registry', () => {
  it('lists magnitude and random and rejects unknown names', () => {
    expect(listImportances().map((r) => r.name)).toEqual(expect.arrayContaining(['magnitude', 'random']));
    expect(() => getImportance('taylor')).toThrow(/unknown importance "taylor".*magnitude/);
    expect(() => rankUnits(fixtureGraph('bert-planted'), { importance: 'taylor' })).toThrow(/unknown importance "taylor"/);
    expect(() => registerImportance(magnitudeImportance)).toThrow(/already registered/);
  });

  it('random importance is reproducible for a seed and differs between seeds', () => {
    const graph = fixtureGraph('bert-planted');
    const a = rankUnits(graph, { importance: 'random', seed: 7 });
    const b = rankUnits(graph, { importance: 'random', seed: 7 });
    const c = rankUnits(graph, { importance: 'random', seed: 8 });
    expect(a).toEqual(b);
    expect(a.importance).toBe('random');
    expect(a.neurons).not.toEqual(c.neurons);
  });

  it('takes a pluggable rule object, and rejects one that returns the wrong number of scores', async () => {
    const lastFirst: UnitImportance = {
      name: 'index',
      description: 'higher index first (a test rule)',
      importance: (layer, kind) => Float64Array.from({ length: kind === 'ffn' ? layer.ffn.width : layer.attention.kvHeads }, (_, i) => i),
    };
    const graph = fixtureGraph('bert-planted');
    const ranking = rankUnits(graph, { importance: lastFirst });
    expect(ranking.neurons[0]!.slice(0, 3)).toEqual([95, 94, 93]);
    const result = await planPrune(graph, { targetParams: 0.5, importance: lastFirst, backend: 'typescript', evals: 50 });
    expect(result.search.importance).toBe('index');
    for (const layer of result.layers) expect(layer.keptNeurons).toEqual(Array.from({ length: layer.neurons }, (_, i) => layer.originalNeurons - layer.neurons + i));
    const broken: UnitImportance = { ...lastFirst, importance: () => new Float64Array(2) };
    expect(() => rankUnits(graph, { importance: broken })).toThrow(/returned 2 scores for 6 layer 0 key-value groups/);
    const nan: UnitImportance = { ...lastFirst, importance: (layer, kind) => new Float64Array(kind === 'ffn' ? layer.ffn.width : layer.attention.kvHeads).fill(NaN) };
    expect(() => rankUnits(graph, { importance: nan })).toThrow(/must be finite/);
  });
});

describe('NaN weights', () => {
  function graphWithNaN(): ModuleGraph {
    const graph = specToGraph({ format: 'zerolm-spec', name: 'nan', hiddenSize: 16, layers: [{ heads: 2, headDim: 8, ffnWidth: 32, repeat: 2 }] });
    const layer = graph.layers[1]!;
    const down = layer.ffn.matrices.find((m) => m.role === 'down')!;
    const poisoned = { ...down, name: 'layers.1.down (poisoned)', values: () => { const v = down.values().slice(); v[5] = NaN; return v; } };
    const layers = graph.layers.map((l, i) => (i === 1 ? { ...l, ffn: { ...l.ffn, matrices: l.ffn.matrices.map((m) => (m === down ? poisoned : m)) } } : l));
    return { ...graph, layers };
  }

  it('ranking and planning fail with an error naming the matrix', async () => {
    expect(() => rankUnits(graphWithNaN())).toThrow(/layers\.1\.down \(poisoned\).*NaN or infinite/);
    await expect(planPrune(graphWithNaN(), { targetParams: 0.5 })).rejects.toThrow(/layers\.1\.down \(poisoned\).*NaN or infinite/);
    await expect(planPrune(graphWithNaN(), { targetParams: 0.5, importance: 'random' })).rejects.toThrow(/poisoned.*NaN or infinite/);
    await expect(planPrune(graphWithNaN(), { targetParams: 0.5, importance: 'random', measure: 'nuclear', evals: 20 })).rejects.toThrow(/poisoned.*NaN or infinite/);
  });
});
