import { specToGraph } from '@zerolm/adapters';
import { countParams, prunedGraph, scoreReport, validatePlan, type ModuleGraph, type PrunePlan, type WeightMatrix } from '@zerolm/core';
import { DEFAULT_PRUNE_MEASURE, graphFlops, planFromCounts, planPrune, type PlanOptions, type PlanResult } from '../src';
import { fixtureGraph, mixedMixerGraph, PLANTED, relativeError } from './search-helpers';

function expectConsistent(graphName: string, result: PlanResult, options: { tolerance: number; measure?: string; variant?: 'linear' | 'log'; alpha?: number }): void {
  const graph = fixtureGraph(graphName);
  validatePlan(graph, result.plan);
  const pruned = prunedGraph(graph, result.plan);
  // The planner's score of its plan is what `zerolm score` reports for the pruned model.
  const report = scoreReport(pruned, { measure: options.measure ?? DEFAULT_PRUNE_MEASURE, alpha: options.alpha ?? 0.5, variant: options.variant ?? 'linear' });
  expect(relativeError(result.score.after, report.score)).toBeLessThan(options.tolerance);
  const full = scoreReport(graph, { measure: options.measure ?? DEFAULT_PRUNE_MEASURE, alpha: options.alpha ?? 0.5, variant: options.variant ?? 'linear' });
  expect(relativeError(result.score.before, full.score)).toBeLessThan(options.tolerance);
  expect(result.params.after).toBe(countParams(pruned).modules);
  expect(result.params.before).toBe(countParams(graph).modules);
  expect(result.flops.after).toBe(graphFlops(pruned, result.flops.seqLen));
  if (result.params.budget !== undefined) expect(countParams(pruned).modules).toBeLessThanOrEqual(result.params.budget);
  if (result.flops.budget !== undefined) expect(graphFlops(pruned, result.flops.seqLen)).toBeLessThanOrEqual(result.flops.budget);
  result.layers.forEach((layer, l) => {
    const lp = result.plan.layers[l]!;
    expect(layer.keptGroups).toEqual(lp.keptGroups);
    expect(layer.keptNeurons).toEqual(lp.keptNeurons);
    if (!layer.dropped) {
      expect(lp.keptGroups).toHaveLength(layer.groups);
      expect(lp.keptNeurons).toHaveLength(layer.neurons);
      const roundTo = result.search.granularity.includes('ffn') ? result.search.roundTo : layer.originalNeurons;
      expect(layer.neurons === layer.originalNeurons || layer.neurons % roundTo === 0).toBe(true);
      expect(layer.neurons).toBeGreaterThanOrEqual(Math.min(roundTo, layer.originalNeurons));
    }
  });
}

function expectNonDominated(points: { params: number; score: number }[]): void {
  for (const p of points) {
    for (const q of points) {
      if (p === q) continue;
      const dominates = q.params <= p.params && q.score >= p.score && (q.params < p.params || q.score > p.score);
      expect(dominates).toBe(false);
    }
  }
  for (let i = 1; i < points.length; i++) expect(points[i]!.params).toBeGreaterThan(points[i - 1]!.params);
}

describe('planPrune on the planted fixtures', () => {
  it.each(PLANTED.flatMap((name) => [0.3, 0.6].map((target) => [name, target] as const)))(
    '%s at targetParams %p: budget met exactly, score equals scoreReport of the pruned graph, evolution >= greedy',
    async (name, target) => {
      const result = await planPrune(fixtureGraph(name), { targetParams: target, backend: 'typescript' });
      expect(result.provider).toBe('typescript');
      expect(result.params.budget).toBeCloseTo(target * result.params.before, 6);
      expectConsistent(name, result, { tolerance: 1e-9 });
      expect(result.score.after).toBeGreaterThanOrEqual(result.greedy.score);
      expect(result.score.after).toBeGreaterThanOrEqual(result.uniform!.score);
      expect(result.greedy.params).toBeLessThanOrEqual(result.params.budget!);
      expect(countParams(prunedGraph(fixtureGraph(name), result.greedy.plan)).modules).toBe(result.greedy.params);
      expect(result.evaluations).toBeGreaterThan(100);
      expectNonDominated(result.pareto);
      for (const p of result.pareto) expect(p.params).toBeLessThanOrEqual(result.params.budget!);
      // The best plan is on the front, and every front point rebuilds into a plan with its params.
      expect(result.pareto.some((p) => p.params === result.params.after && p.score === result.score.after)).toBe(true);
      for (const p of result.pareto.slice(0, 3)) {
        expect(countParams(prunedGraph(fixtureGraph(name), planFromCounts(result.ranking, p.counts))).modules).toBe(p.params);
      }
    },
  );

  it('onnxruntime scoring gives the same plan quality, reports its provider, and matches scoreReport within 1e-4', async () => {
    const result = await planPrune(fixtureGraph('llama-planted'), { targetParams: 0.5, evals: 400 });
    expect(['cpu', 'cuda']).toContain(result.provider);
    expect(result.scoredRows).toBe(16); // FFN 128 in steps of 8
    expectConsistent('llama-planted', result, { tolerance: 1e-4 });
    expect(result.score.after).toBeGreaterThanOrEqual(result.greedy.score);
  });

  it('is reproducible for a seed', async () => {
    const options: PlanOptions = { targetParams: 0.5, backend: 'typescript', evals: 300, seed: 11, granularity: 'heads,ffn,layers' };
    const a = await planPrune(fixtureGraph('gpt2-planted'), options);
    const b = await planPrune(fixtureGraph('gpt2-planted'), options);
    expect(b.plan).toEqual(a.plan);
    expect(b.score).toEqual(a.score);
    expect(b.pareto).toEqual(a.pareto);
    expect(b.evaluations).toBe(a.evaluations);
  });

  it('the log variant, another alpha and a FLOPs budget', async () => {
    const result = await planPrune(fixtureGraph('bert-planted'), { targetFlops: 0.5, variant: 'log', alpha: 0.8, backend: 'typescript', evals: 300 });
    expect(result.params.budget).toBeUndefined();
    expect(result.flops.budget).toBeCloseTo(0.5 * result.flops.before, 6);
    expectConsistent('bert-planted', result, { tolerance: 1e-9, variant: 'log', alpha: 0.8 });
    expect(result.score.after).toBeGreaterThanOrEqual(result.greedy.score);
    const both = await planPrune(fixtureGraph('bert-planted'), { targetFlops: 0.7, targetParams: 0.4, backend: 'typescript', evals: 300 });
    expectConsistent('bert-planted', both, { tolerance: 1e-9 });
  });

  it('a spectral measure plans in TypeScript with per-count caching and the same exactness', async () => {
    const result = await planPrune(fixtureGraph('llama-planted'), { targetParams: 0.5, measure: 'nuclear', evals: 150, roundTo: 32 });
    expect(result.provider).toBe('typescript');
    expect(result.providerReason).toMatch(/singular values/);
    expectConsistent('llama-planted', result, { tolerance: 1e-9, measure: 'nuclear' });
    expect(result.score.after).toBeGreaterThanOrEqual(result.greedy.score);
  });

  it('granularity: heads only keeps every FFN whole, ffn only keeps every head, layers may drop layers', async () => {
    const graph = fixtureGraph('bert-planted');
    const heads = await planPrune(graph, { targetParams: 0.7, granularity: ['heads'], backend: 'typescript', evals: 100 });
    for (const l of heads.layers) expect(l.neurons).toBe(l.originalNeurons);
    expectConsistent('bert-planted', heads, { tolerance: 1e-9 });
    const ffn = await planPrune(graph, { targetParams: 0.6, granularity: 'ffn', backend: 'typescript', evals: 100 });
    for (const l of ffn.layers) expect(l.groups).toBe(l.originalGroups);
    expectConsistent('bert-planted', ffn, { tolerance: 1e-9 });
    // Below one group and 8 neurons in every layer: only dropping layers meets this.
    const tight = await planPrune(graph, { targetParams: 0.1, granularity: 'heads,ffn,layers', backend: 'typescript', evals: 200 });
    expect(tight.layers.some((l) => l.dropped)).toBe(true);
    expect(tight.layers.some((l) => !l.dropped)).toBe(true);
    expectConsistent('bert-planted', tight, { tolerance: 1e-9 });
  });

  it('a budget at or above the full model: greedy keeps everything, evolution may still find a higher score', async () => {
    const graph = fixtureGraph('gpt2-planted');
    for (const targetParams of [1, 10 ** 9]) {
      const result = await planPrune(graph, { targetParams, backend: 'typescript', evals: 200 });
      expect(result.greedy.params).toBe(result.params.before);
      expect(result.greedy.score).toBe(result.score.before);
      expect(result.score.after).toBeGreaterThanOrEqual(result.score.before);
      expectConsistent('gpt2-planted', result, { tolerance: 1e-9 });
    }
  });

  it('a budget that only the smallest layer alone meets', async () => {
    const spec = specToGraph({
      format: 'zerolm-spec',
      name: 'uneven',
      hiddenSize: 32,
      layers: [
        { heads: 4, headDim: 16, ffnWidth: 64 },
        { heads: 2, headDim: 4, ffnWidth: 16 },
        { heads: 4, headDim: 16, ffnWidth: 64 },
      ],
      init: { kind: 'normal', std: 0.1 },
    });
    // The small layer scores next to nothing, so greedy descent drops it first and ends on a big
    // layer that cannot fit: the search must still find the small layer alone.
    const faint = (m: WeightMatrix): WeightMatrix => ({ ...m, values: () => m.values().map((v) => v * 1e-3) });
    const small = spec.layers[1]!;
    const graph: ModuleGraph = {
      ...spec,
      layers: spec.layers.map((l, i) =>
        i === 1 ? { ...small, attention: { ...small.attention, matrices: small.attention.matrices.map(faint) }, ffn: { ...small.ffn, matrices: small.ffn.matrices.map(faint) } } : l,
      ),
    };
    const layerMinimum = (headDim: number) => 4 * 32 * headDim + 2 * 32 * 8; // one head + 8 neurons, no biases
    const budget = layerMinimum(4) + 10;
    expect(budget).toBeLessThan(layerMinimum(16));
    for (const search of ['greedy', 'evolutionary'] as const) {
      const result = await planPrune(graph, { targetParams: budget, granularity: 'heads,ffn,layers', search, backend: 'typescript', evals: 100 });
      expect(result.params.after).toBeLessThanOrEqual(budget);
      expect(result.layers.map((l) => l.dropped)).toEqual([true, false, true]);
      expect(countParams(prunedGraph(graph, result.plan)).modules).toBe(result.params.after);
    }
  });

  it('search: greedy returns the greedy baseline alone', async () => {
    const result = await planPrune(fixtureGraph('llama-planted'), { targetParams: 0.5, search: 'greedy', backend: 'typescript' });
    expect(result.plan).toEqual(result.greedy.plan);
    expect(result.score.after).toBe(result.greedy.score);
    expect(result.evaluations).toBe(result.greedy.evaluations);
    expect(result.uniform).toBeUndefined();
  });

  it('reports progress', async () => {
    const calls: [number, number, string][] = [];
    await planPrune(fixtureGraph('bert-planted'), { targetParams: 0.5, backend: 'typescript', evals: 200, onProgress: (d, t, p) => calls.push([d, t, p]) });
    expect(calls.some(([, , p]) => p === 'scoring')).toBe(true);
    const evolution = calls.filter(([, , p]) => p === 'evolution');
    expect(evolution.length).toBeGreaterThan(1);
    expect(evolution[evolution.length - 1]![1]).toBe(200);
    for (let i = 1; i < evolution.length; i++) expect(evolution[i]![0]).toBeGreaterThanOrEqual(evolution[i - 1]![0]);
  });
});

describe('latency limit', () => {
  // A stand-in for an exported model's measured latency: proportional to its parameters.
  const latencyOf = (graphName: string) => async (plan: PrunePlan) => countParams(prunedGraph(fixtureGraph(graphName), plan)).modules / 1000;

  it('checks the Pareto front best score first until a candidate fits', async () => {
    const graph = fixtureGraph('bert-planted');
    const unlimited = await planPrune(graph, { targetParams: 0.8, backend: 'typescript', evals: 200 });
    const maxLatencyMs = (unlimited.params.after * 0.6) / 1000;
    const result = await planPrune(graph, { targetParams: 0.8, backend: 'typescript', evals: 200, maxLatencyMs, latencyOf: latencyOf('bert-planted'), latencyStep: 0 });
    const checks = result.latency!.checks;
    expect(checks.length).toBeGreaterThan(1);
    for (let i = 1; i < checks.length; i++) expect(checks[i]!.score).toBeLessThanOrEqual(checks[i - 1]!.score);
    expect(checks.slice(0, -1).every((c) => c.ms > maxLatencyMs)).toBe(true);
    expect(checks[checks.length - 1]!.ms).toBeLessThanOrEqual(maxLatencyMs);
    expect(result.params.after / 1000).toBeLessThanOrEqual(maxLatencyMs);
    expectConsistent('bert-planted', result, { tolerance: 1e-9 });
    // The greedy sweep gives the front candidates of every size.
    expect(Math.min(...result.pareto.map((p) => p.params))).toBeLessThan(maxLatencyMs * 1000);
  });

  it('latency alone (no size budget) searches the whole range', async () => {
    const result = await planPrune(fixtureGraph('llama-planted'), { backend: 'typescript', evals: 100, maxLatencyMs: 40, latencyOf: latencyOf('llama-planted') });
    expect(result.params.after).toBeLessThanOrEqual(40_000);
    expect(result.params.budget).toBeUndefined();
  });

  it('fails clearly when nothing fits or no callback is given', async () => {
    const graph = fixtureGraph('bert-planted');
    await expect(planPrune(graph, { targetParams: 0.5, backend: 'typescript', evals: 50, maxLatencyMs: 0.001, latencyOf: latencyOf('bert-planted') })).rejects.toThrow(
      /no candidate on the Pareto front meets maxLatencyMs 0.001 \(fastest measured: /,
    );
    await expect(planPrune(graph, { targetParams: 0.5, maxLatencyMs: 10 })).rejects.toThrow(/maxLatencyMs needs a latencyOf\(plan\) callback/);
    await expect(planPrune(graph, { maxLatencyMs: -1, latencyOf: latencyOf('bert-planted') })).rejects.toThrow(/maxLatencyMs must be a positive number/);
  });
});

describe('bad input', () => {
  const graph = () => fixtureGraph('bert-planted');
  it.each<[string, PlanOptions, RegExp]>([
    ['a fraction above 1 that is not a count', { targetParams: 1.5 }, /targetParams must be a fraction in \(0, 1\] or a whole count > 1 \(got 1.5\)/],
    ['a zero fraction', { targetParams: 0 }, /targetParams must be a fraction in \(0, 1\]/],
    ['a negative FLOPs target', { targetFlops: -0.3 }, /targetFlops must be a fraction in \(0, 1\]/],
    ['no budget', {}, /no budget: give targetParams, targetFlops or maxLatencyMs/],
    ['an unknown granularity', { targetParams: 0.5, granularity: 'heads,blocks' }, /unknown granularity "blocks"/],
    ['an unknown importance', { targetParams: 0.5, importance: 'fisher' }, /unknown importance "fisher"/],
    ['an unknown measure', { targetParams: 0.5, measure: 'frob' }, /unknown capacity measure "frob"/],
    ['alpha outside [0, 1]', { targetParams: 0.5, alpha: 1.2 }, /alpha must be in \[0, 1\]/],
    ['an unknown search', { targetParams: 0.5, search: 'annealing' as never }, /unknown search "annealing"/],
    ['roundTo 0', { targetParams: 0.5, roundTo: 0 }, /roundTo must be a whole number >= 1/],
    ['evals 0', { targetParams: 0.5, evals: 0 }, /evals must be a whole number >= 1/],
    ['population 1', { targetParams: 0.5, population: 1 }, /population must be at least 2/],
    [
      'a budget below one unit per layer without layers',
      { targetParams: 0.05 },
      /budget \(targetParams 0.05 = \d+ parameters\) cannot be met: the smallest sub-network the search space allows \(one key-value group and 8 FFN neurons per layer\) has \d+ parameters.*add 'layers' to the granularity/,
    ],
    ['an absolute count below the smallest layer', { targetParams: 100, granularity: 'heads,ffn,layers' }, /cannot be met: .*in a single layer\) has \d+ parameters/],
  ])('%s', async (_what, options, message) => {
    await expect(planPrune(graph(), { backend: 'typescript', ...options })).rejects.toThrow(message);
  });
});

describe('token mixers without prunable heads', () => {
  it('keeps their heads, prunes their FFNs, counts their uncut matrices, and matches scoreReport', async () => {
    const graph = mixedMixerGraph();
    const result = await planPrune(graph, { targetParams: 0.6, backend: 'auto', evals: 300, granularity: 'heads,ffn,layers' });
    const pruned = prunedGraph(graph, result.plan);
    expect(relativeError(result.score.after, scoreReport(pruned, { measure: result.measure }).score)).toBeLessThan(1e-4);
    expect(countParams(pruned).modules).toBe(result.params.after);
    expect(result.params.after).toBeLessThanOrEqual(result.params.budget!);
    expect(graphFlops(pruned)).toBe(result.flops.after);
    result.layers.forEach((layer, l) => {
      if (!layer.dropped && graph.layers[l]!.attention.kind !== 'attention') expect(layer.groups).toBe(layer.originalGroups);
    });
  });
});

describe('uniform widths', () => {
  it('keeps the same fraction of every layer, the largest that fits', async () => {
    const graph = fixtureGraph('bert-tiny');
    const result = await planPrune(graph, { targetParams: 0.5, search: 'uniform', backend: 'typescript' });
    const kept = result.plan.layers.map((l) => [l.keptGroups.length, l.keptNeurons.length]);
    expect(new Set(kept.map((k) => k.join('/'))).size).toBe(1);
    expect(result.params.after).toBeLessThanOrEqual(result.params.budget!);
    expect(result.search.method).toBe('uniform');
  });
});
