/**
 * The global search (`search: 'global'`): keep the units with the highest importance scores of
 * the whole model, as FLAP's adaptive structure (AL-AM) does, for a rule whose scores compare
 * across layers and between heads and neurons (`flap`). Units are taken best first and each layer
 * keeps what it has taken, rounded down to the counts the search space allows (at least one
 * key-value group and `roundTo` neurons per layer, neurons in multiples of `roundTo`); the longest
 * prefix whose plan fits every budget wins. FLAP finds the threshold whose kept units' parameters
 * come nearest the target (and may empty a layer); here the plan stays at or under the budget and
 * inside the search space. The proxy score plays no part.
 */
import { pointOf, type SearchPoint } from './greedy';
import { fits, type Budget, type SearchSpace } from './space';
import type { UnitRanking } from '../scoring/ranking';

/** The level of the largest allowed count at most `count` (the smallest level when none is). */
function levelAtMost(allowed: readonly number[], count: number): number {
  let level = 0;
  for (let i = 0; i < allowed.length; i++) if (allowed[i]! <= count) level = i;
  return level;
}

export function globalSolution(space: SearchSpace, budget: Budget, ranking: UnitRanking): SearchPoint | undefined {
  const scores = ranking.scores;
  if (!scores) throw new Error(`search "global" ranks units across layers, so it needs an importance whose scores compare across layers (flap); "${ranking.importance}" ranks within each layer only`);
  const units: { score: number; layer: number; kind: 0 | 1 }[] = [];
  for (let l = 0; l < space.layers; l++) {
    scores.groups[l]!.forEach((score) => units.push({ score, layer: l, kind: 0 }));
    scores.neurons[l]!.forEach((score) => units.push({ score, layer: l, kind: 1 }));
  }
  // Best first; ties keep layer and kind order (a stable sort).
  units.sort((a, b) => b.score - a.score);
  const taken = Array.from({ length: space.layers }, () => [0, 0]);
  const genome = space.minimumGenome();
  let state = space.state(genome);
  if (!fits(state, budget)) return undefined;
  let best = state;
  for (const unit of units) {
    const counts = taken[unit.layer]!;
    counts[unit.kind]!++;
    const allowed = unit.kind === 0 ? space.allowed[unit.layer]!.groups : space.allowed[unit.layer]!.neurons;
    const slot = unit.kind === 0 ? unit.layer : space.layers + unit.layer;
    const level = levelAtMost(allowed, counts[unit.kind]!);
    if (level === genome[slot]) continue;
    genome[slot] = level;
    state = space.state(genome);
    if (!fits(state, budget)) break;
    best = { ...state, genome: genome.slice() };
  }
  return pointOf(space, best, 'global');
}
