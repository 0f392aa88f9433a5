import { countParams, prunedGraph, scoreReport } from '@zerolm/core';
import { compareSearches, planPrune } from '../src';
import { bertBaseSpecGraph, relativeError } from './search-helpers';

// One BERT-base-shaped spec graph (85M Attention+FFN weights, drawn once per matrix): the
// evolutionary search must match or beat greedy at the same budget on a real-sized model.
describe('planning a BERT-base-shaped model', () => {
  const graph = bertBaseSpecGraph();

  it('evolution >= greedy at 50% parameters with the default evaluations, budget met, score exact', async () => {
    const result = await planPrune(graph, { targetParams: 0.5 });
    expect(result.evaluations).toBe(2000);
    expect(result.score.after).toBeGreaterThanOrEqual(result.greedy.score);
    expect(result.score.after).toBeGreaterThanOrEqual(result.uniform!.score);
    const pruned = prunedGraph(graph, result.plan);
    expect(countParams(pruned).modules).toBeLessThanOrEqual(result.params.budget!);
    expect(result.params.budget).toBe(0.5 * countParams(graph).modules);
    const tolerance = result.provider === 'typescript' ? 1e-9 : 1e-4;
    expect(result.measure).toBe('nuclear-bound');
    expect(relativeError(result.score.after, scoreReport(pruned, { measure: result.measure }).score)).toBeLessThan(tolerance);
  });

  it('compareSearches reports both scores at one budget (what the benchmark prints)', async () => {
    const comparison = await compareSearches(graph, { targetParams: 0.3, evals: 500, backend: 'typescript' });
    expect(comparison.budgetParams).toBe(0.3 * countParams(graph).modules);
    expect(comparison.evolution.params).toBeLessThanOrEqual(comparison.budgetParams!);
    expect(comparison.greedy.params).toBeLessThanOrEqual(comparison.budgetParams!);
    expect(comparison.gain).toBe(comparison.evolution.score - comparison.greedy.score);
    expect(comparison.gain).toBeGreaterThanOrEqual(0);
    expect(comparison.provider).toBe('typescript');
  });
});
