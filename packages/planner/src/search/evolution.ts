/**
 * The evolutionary search: a (mu + lambda) genetic algorithm over per-layer count genomes.
 *
 * - Initial population: the greedy solution, the uniform-width solution (every layer keeps the
 *   same fraction of its groups and neurons, the largest fraction that fits) and random genomes
 *   repaired to the budget and refilled. Since the best candidate is never lost, the result scores
 *   at least as high as greedy and uniform.
 * - Offspring: tournament selection (3), uniform crossover of whole layers, 1-3 mutations (a
 *   layer's group or neuron level moved by up to a quarter of its range, or the layer dropped or
 *   revived), then repair (remove least-damaging steps until within budget) and refill (add the
 *   most rewarding steps while the budget allows).
 * - Survivors: the best `population` distinct candidates of parents and offspring.
 * Every distinct candidate scored counts as one evaluation; a run stops after `evals`, or early
 * when the space yields no new candidates.
 */
import { Rng } from '@zerolm/core';
import { performance } from 'perf_hooks';
import { pointOf, type SearchPoint } from './greedy';
import { refill, repair } from './moves';
import { fits, type Budget, type SearchSpace } from './space';

export const DEFAULT_EVALS = 2000;
export const DEFAULT_POPULATION = 32;

export interface EvolutionOptions {
  evals?: number;
  population?: number;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EvolutionOutcome {
  best: SearchPoint;
  /** Every distinct candidate scored (all within budget). */
  points: SearchPoint[];
  evaluations: number;
  generations: number;
  ms: number;
}

const { ceil } = Math;

/** Levels for keeping fraction `fg` of every layer's groups and `fn` of its neurons (nearest allowed counts). */
function uniformGenomeAt(space: SearchSpace, fg: number, fn: number): Int32Array {
  const g = space.minimumGenome();
  const nearest = (counts: readonly number[], target: number) => {
    let best = 0;
    for (let i = 1; i < counts.length; i++) if (Math.abs(counts[i]! - target) < Math.abs(counts[best]! - target)) best = i;
    return best;
  };
  space.allowed.forEach((a, l) => {
    g[l] = nearest(a.groups, fg * a.groups[a.groups.length - 1]!);
    g[space.layers + l] = nearest(a.neurons, fn * a.neurons[a.neurons.length - 1]!);
  });
  return g;
}

/** Every fraction some layer can keep exactly (count / full), ascending. */
function keptFractions(space: SearchSpace, of: 'groups' | 'neurons'): number[] {
  const fractions = new Set<number>();
  for (const a of space.allowed) for (const c of a[of]) fractions.add(c / a[of][a[of].length - 1]!);
  return [...fractions].sort((x, y) => x - y);
}

/**
 * The uniform-width solution, the baseline a search must beat: every layer keeps the same
 * fraction of its key-value groups, the achievable fraction nearest the budget's (ties: the
 * larger), and the same fraction of its FFN neurons, the largest that then fits (the FFN takes
 * what the heads leave). When no layer-uniform choice fits (possible only with `layers`), layers
 * are dropped greedily.
 */
export function uniformSolution(space: SearchSpace, budget: Budget): SearchPoint | undefined {
  const shares = [budget.params / space.fullParams, budget.flops / space.fullFlops].filter((x) => Number.isFinite(x));
  const target = shares.length > 0 ? Math.min(...shares) : 1;
  const groupFractions = keptFractions(space, 'groups').sort((a, b) => Math.abs(a - target) - Math.abs(b - target) || b - a);
  const neuronFractions = keptFractions(space, 'neurons').reverse();
  for (const fg of groupFractions) {
    for (const fn of neuronFractions) {
      const state = space.state(uniformGenomeAt(space, fg, fn));
      if (fits(state, budget)) return pointOf(space, state, 'uniform');
    }
  }
  const state = space.state(uniformGenomeAt(space, 0, 0));
  if (!repair(space, state, budget)) return undefined;
  return pointOf(space, state, 'uniform');
}

function compare(a: SearchPoint, b: SearchPoint): number {
  if (a.score !== b.score) return b.score - a.score;
  if (a.params !== b.params) return a.params - b.params;
  for (let i = 0; i < a.genome.length; i++) if (a.genome[i] !== b.genome[i]) return a.genome[i]! - b.genome[i]!;
  return 0;
}

export function evolutionarySearch(space: SearchSpace, budget: Budget, seeds: readonly SearchPoint[], options: EvolutionOptions = {}): EvolutionOutcome {
  const started = performance.now();
  const evals = options.evals ?? DEFAULT_EVALS;
  const size = options.population ?? DEFAULT_POPULATION;
  if (!Number.isInteger(evals) || evals < 1) throw new Error(`evals must be a whole number >= 1 (got ${evals})`);
  if (!Number.isInteger(size) || size < 2) throw new Error(`population must be a whole number >= 2 (got ${size})`);
  const rng = new Rng(`zerolm-planner/evolution/${options.seed ?? 0}`);
  const L = space.layers;
  const seen = new Set<string>();
  const points: SearchPoint[] = [];
  let best: SearchPoint | undefined;

  const admit = (point: SearchPoint): boolean => {
    const key = space.key(point.genome);
    if (seen.has(key)) return false;
    seen.add(key);
    points.push(point);
    if (!best || compare(point, best) < 0) best = point;
    if (options.onProgress && points.length % 32 === 0) options.onProgress(points.length, evals);
    return true;
  };

  /** Makes any genome a candidate: at least one layer alive, dropped layers canonical, within budget, refilled. */
  const finish = (genome: Int32Array, source: SearchPoint['source']): SearchPoint | undefined => {
    let alive = 0;
    for (let l = 0; l < L; l++) {
      if (genome[2 * L + l] === 1) alive++;
      else genome[l] = genome[L + l] = 0;
    }
    if (alive === 0) genome[2 * L + rng.int(L)] = 1;
    const state = space.state(genome);
    if (!repair(space, state, budget)) return undefined;
    refill(space, state, budget);
    return pointOf(space, state, source);
  };

  const randomGenome = (): Int32Array => {
    const g = new Int32Array(3 * L);
    for (let l = 0; l < L; l++) {
      g[l] = rng.int(space.groupLevels(l));
      g[L + l] = rng.int(space.neuronLevels(l));
      g[2 * L + l] = space.canDrop && rng.uniform() < 0.1 ? 0 : 1;
    }
    return g;
  };

  const mutate = (g: Int32Array): void => {
    const moves = 1 + rng.int(3);
    for (let m = 0; m < moves; m++) {
      const l = rng.int(L);
      const kinds: number[] = [];
      if (space.groupLevels(l) > 1) kinds.push(0);
      if (space.neuronLevels(l) > 1) kinds.push(1);
      if (space.canDrop) kinds.push(2);
      if (kinds.length === 0) continue;
      const kind = kinds[rng.int(kinds.length)]!;
      if (kind === 2) {
        let alive = 0;
        for (let i = 0; i < L; i++) alive += g[2 * L + i]!;
        if (g[2 * L + l] === 1) {
          if (alive > 1) g[2 * L + l] = 0;
        } else {
          g[2 * L + l] = 1;
          g[l] = rng.int(space.groupLevels(l));
          g[L + l] = rng.int(space.neuronLevels(l));
        }
        continue;
      }
      if (g[2 * L + l] !== 1) continue;
      const levels = kind === 0 ? space.groupLevels(l) : space.neuronLevels(l);
      const delta = (1 + rng.int(Math.max(1, ceil(levels / 4)))) * (rng.uniform() < 0.5 ? -1 : 1);
      const at = kind * L + l;
      g[at] = Math.min(levels - 1, Math.max(0, g[at]! + delta));
    }
  };

  let population: SearchPoint[] = [];
  for (const seed of seeds) {
    if (points.length >= evals) break;
    // Seeds are scored as given (they already fit), so the search can only match or beat them.
    const point: SearchPoint = { ...seed, genome: seed.genome.slice() };
    if (admit(point)) population.push(point);
  }
  for (let tries = 0; population.length < size && points.length < evals && tries < 20 * size; tries++) {
    const point = finish(randomGenome(), 'random');
    if (point && admit(point)) population.push(point);
  }
  if (population.length === 0 || !best) throw new Error('no sub-network in the search space meets the budget');

  const tournament = (): SearchPoint => {
    let winner = population[rng.int(population.length)]!;
    for (let i = 1; i < 3; i++) {
      const other = population[rng.int(population.length)]!;
      if (compare(other, winner) < 0) winner = other;
    }
    return winner;
  };

  let generations = 0;
  let fruitless = 0;
  while (points.length < evals && fruitless < 10 * size) {
    const offspring: SearchPoint[] = [];
    while (offspring.length < size && points.length < evals && fruitless < 10 * size) {
      const a = tournament();
      const b = tournament();
      const child = a.genome.slice();
      if (rng.uniform() < 0.9) {
        for (let l = 0; l < L; l++) {
          if (rng.uniform() < 0.5) {
            child[l] = b.genome[l]!;
            child[L + l] = b.genome[L + l]!;
            child[2 * L + l] = b.genome[2 * L + l]!;
          }
        }
      }
      mutate(child);
      const point = finish(child, 'evolution');
      if (point && admit(point)) {
        offspring.push(point);
        fruitless = 0;
      } else {
        fruitless++;
      }
    }
    if (offspring.length === 0) break;
    population = [...population, ...offspring].sort(compare).slice(0, size);
    generations++;
  }
  options.onProgress?.(points.length, evals);
  return { best, points, evaluations: points.length, generations, ms: performance.now() - started };
}
