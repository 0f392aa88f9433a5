/**
 * The greedy baseline: start from the full model and repeatedly remove the step (one kv group,
 * `roundTo` neurons, or a layer) that loses the least score per unit of budget removed, until
 * the candidate fits. With `sweep` it keeps going to the smallest sub-network the granularity
 * allows, so the Pareto front it reports spans every size (what a latency check needs).
 */
import { performance } from 'perf_hooks';
import { descendToMinimum, repair, type Counter } from './moves';
import { type Budget, type SearchSpace, type State } from './space';

/** A candidate the search scored. */
export interface SearchPoint {
  params: number;
  flops: number;
  score: number;
  genome: Int32Array;
  /** Which procedure produced it. */
  source: 'greedy' | 'uniform' | 'random' | 'evolution' | 'global';
}

export function pointOf(space: SearchSpace, state: State, source: SearchPoint['source']): SearchPoint {
  const genome = state.genome.slice();
  // Exact totals from the genome, not the running sums (which collect rounding along the way).
  return { params: space.params(genome), flops: space.flops(genome), score: space.score(genome), genome, source };
}

export interface GreedyOutcome {
  best: SearchPoint;
  /** Candidates within budget it passed through (only `best` unless sweeping). */
  points: SearchPoint[];
  evaluations: number;
  ms: number;
}

export interface GreedyOptions {
  sweep?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export function greedySearch(space: SearchSpace, budget: Budget, options: GreedyOptions = {}): GreedyOutcome {
  const started = performance.now();
  const counter: Counter = { evaluations: 0 };
  const state = space.state(space.fullGenome());
  // Progress in the budget that binds first: the amount removed so far out of what must go.
  const byParams = Number.isFinite(budget.params) || !Number.isFinite(budget.flops);
  const amount = (s: State) => (byParams ? s.params : s.flops);
  const start = amount(state);
  const total = Math.max(0, start - (byParams ? budget.params : budget.flops));
  let steps = 0;
  const report = (s: State) => {
    if (options.onProgress && total > 0 && ++steps % 64 === 0) options.onProgress(Math.min(total, start - amount(s)), total);
  };
  let best: SearchPoint;
  if (repair(space, state, budget, counter, report)) {
    best = pointOf(space, state, 'greedy');
  } else {
    // Descent ends in one layer at its smallest counts, which may be a layer too large for a
    // budget that a smaller layer alone would meet: take the smallest single layer that fits.
    const single = smallestSingleLayer(space, budget);
    if (!single) throw new Error('no sub-network in the search space meets the budget');
    state.genome.set(single);
    Object.assign(state, space.state(state.genome));
    best = pointOf(space, state, 'greedy');
  }
  const points = [best];
  if (options.sweep) descendToMinimum(space, state, budget, (s) => points.push(pointOf(space, s, 'greedy')), counter);
  return { best, points, evaluations: counter.evaluations + 1, ms: performance.now() - started };
}

/** The genome keeping only the layer with the fewest parameters at its smallest counts that fits `budget`. */
function smallestSingleLayer(space: SearchSpace, budget: Budget): Int32Array | undefined {
  let chosen: number | undefined;
  for (let l = 0; l < space.layers; l++) {
    const fitsAlone = space.layerParams(l, 0, 0) <= budget.params && space.layerFlops(l, 0, 0) <= budget.flops;
    if (fitsAlone && (chosen === undefined || space.layerParams(l, 0, 0) < space.layerParams(chosen, 0, 0))) chosen = l;
  }
  if (chosen === undefined || !space.canDrop) return undefined;
  const genome = new Int32Array(3 * space.layers);
  genome[2 * space.layers + chosen] = 1;
  return genome;
}
