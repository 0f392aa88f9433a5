import { countParams, prunedGraph, Rng, type ModuleGraph } from '@zerolm/core';
import { allowedCounts, graphFlops, parseGranularity, planFromCounts, rankUnits, resolveTarget, SearchSpace } from '../src';
import { bertBaseSpecGraph, fixtureGraph, PLANTED, smallGqaSpecGraph } from './search-helpers';

const noScores = { attention: () => 0, ffn: () => 0 };

function space(graph: ModuleGraph, granularity: ('heads' | 'ffn' | 'layers')[] = ['heads', 'ffn', 'layers'], seqLen = 128): SearchSpace {
  return new SearchSpace(graph, noScores, { alpha: 0.5, variant: 'linear', granularity, roundTo: 4, seqLen });
}

describe('cost model', () => {
  const graphs: [string, () => ModuleGraph][] = [
    ...PLANTED.map((name): [string, () => ModuleGraph] => [name, () => fixtureGraph(name)]),
    ['bert-nonuniform', () => fixtureGraph('bert-nonuniform')],
    ['small-gqa spec', smallGqaSpecGraph],
  ];

  it.each(graphs)('%s: params and FLOPs of a genome equal countParams and graphFlops of its pruned graph', (_name, make) => {
    const graph = make();
    const s = space(graph, undefined, 96);
    const ranking = rankUnits(graph);
    const rng = new Rng(`costs/${graph.name}`);
    const full = s.fullGenome();
    expect(s.params(full)).toBe(countParams(graph).modules);
    expect(s.flops(full)).toBe(graphFlops(graph, 96));
    for (let trial = 0; trial < 20; trial++) {
      const genome = s.fullGenome();
      let alive = graph.layers.length;
      for (let l = 0; l < graph.layers.length; l++) {
        genome[l] = rng.int(s.groupLevels(l));
        genome[graph.layers.length + l] = rng.int(s.neuronLevels(l));
        if (alive > 1 && rng.uniform() < 0.25) {
          genome[2 * graph.layers.length + l] = genome[l] = genome[graph.layers.length + l] = 0;
          alive--;
        }
      }
      const pruned = prunedGraph(graph, planFromCounts(ranking, s.counts(genome)));
      expect(s.params(genome)).toBe(countParams(pruned).modules);
      expect(s.flops(genome)).toBe(graphFlops(pruned, 96));
    }
  });

  it('graphFlops of a BERT-base-shaped model follows the stated formula', () => {
    const graph = bertBaseSpecGraph();
    const h = 768;
    const perLayer = 2 * (4 * h * h + 2 * h * 3072) + 2 * 2 * 128 * 12 * 64;
    expect(graphFlops(graph)).toBe(12 * perLayer);
    expect(graphFlops(graph, 512)).toBe(12 * (perLayer + 4 * (512 - 128) * 12 * 64));
  });
});

describe('search space', () => {
  it('allows FFN counts in multiples of roundTo plus the full width, and 1..kvHeads groups', () => {
    const graph = smallGqaSpecGraph(); // widths 40, 40, 52; kv heads 2, 2, 3
    const allowed = allowedCounts(graph, ['heads', 'ffn'], 8);
    expect(allowed[0]).toEqual({ groups: [1, 2], neurons: [8, 16, 24, 32, 40] });
    expect(allowed[2]).toEqual({ groups: [1, 2, 3], neurons: [8, 16, 24, 32, 40, 48, 52] });
    expect(allowedCounts(graph, ['ffn'], 16)[2]).toEqual({ groups: [3], neurons: [16, 32, 48, 52] });
    expect(allowedCounts(graph, ['heads'], 8)[2]).toEqual({ groups: [1, 2, 3], neurons: [52] });
    expect(allowedCounts(graph, ['heads', 'ffn'], 64)[0]).toEqual({ groups: [1, 2], neurons: [40] });
    expect(() => allowedCounts(graph, ['ffn'], 0)).toThrow(/roundTo must be a whole number >= 1/);
  });

  it('parses granularity lists and names unknown entries', () => {
    expect(parseGranularity(undefined)).toEqual(['heads', 'ffn']);
    expect(parseGranularity('ffn, layers')).toEqual(['ffn', 'layers']);
    expect(parseGranularity(['layers', 'heads'])).toEqual(['heads', 'layers']);
    expect(() => parseGranularity('heads,neurons')).toThrow(/unknown granularity "neurons" \(known: heads, ffn, layers\)/);
    expect(() => parseGranularity('')).toThrow(/granularity is empty/);
  });
});

describe('budget targets', () => {
  it('takes fractions in (0, 1] of the full amount and whole counts above 1', () => {
    expect(resolveTarget(0.5, 1000, 'targetParams')).toBe(500);
    expect(resolveTarget(1, 1000, 'targetParams')).toBe(1000);
    expect(resolveTarget(250, 1000, 'targetParams')).toBe(250);
    expect(resolveTarget(undefined, 1000, 'targetParams')).toBeUndefined();
  });

  it.each([0, -0.5, 1.5, NaN, Infinity])('rejects %p', (value) => {
    expect(() => resolveTarget(value, 1000, 'targetFlops')).toThrow(/targetFlops must be/);
  });
});
