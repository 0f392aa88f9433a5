/**
 * Greedy moves through the search space, shared by the greedy baseline and the evolutionary
 * search's repair and refill: the step that loses the least score per unit of budget freed
 * (descent), or gains the most per unit of budget spent while still fitting (refill).
 *
 * "Per unit of budget": each budget's change is divided by the full model's amount, and only
 * the budgets that matter count: while descending, those still exceeded (all set ones once none
 * is); while refilling, every set one. With no budget set, parameters count.
 */
import { fits, type Budget, type SearchSpace, type State, type Step } from './space';

const { abs } = Math;

/** Counts candidate evaluations (one per step whose score change was computed). */
export interface Counter {
  evaluations: number;
}

interface Weights {
  params: number;
  flops: number;
}

function weightsFor(space: SearchSpace, budget: Budget, state: State | undefined): Weights {
  const hasParams = Number.isFinite(budget.params);
  const hasFlops = Number.isFinite(budget.flops);
  if (!hasParams && !hasFlops) return { params: 1 / space.fullParams, flops: 0 };
  let useParams = hasParams;
  let useFlops = hasFlops;
  if (state) {
    const overParams = hasParams && state.params > budget.params;
    const overFlops = hasFlops && state.flops > budget.flops;
    if (overParams || overFlops) {
      useParams = overParams;
      useFlops = overFlops;
    }
  }
  return { params: useParams ? 1 / space.fullParams : 0, flops: useFlops ? 1 / space.fullFlops : 0 };
}

const KINDS = [0, 1, 2] as const;

/**
 * The best single step: down = least score lost per budget freed (a step that raises the score
 * wins outright); up = most score gained per budget spent among steps that keep `budget`: only
 * steps that raise the score, or with `budget.fill` any step that fits (the least damaging).
 */
export function bestStep(space: SearchSpace, state: State, up: boolean, budget: Budget, counter?: Counter): Step | undefined {
  const w = weightsFor(space, budget, up ? undefined : state);
  const candidate = {} as Step;
  let best: Step | undefined;
  let bestValue = 0;
  for (let l = 0; l < space.layers; l++) {
    for (const kind of KINDS) {
      const step = space.step(state, l, kind, up, candidate);
      if (!step) continue;
      if (counter) counter.evaluations++;
      const resource = abs(step.dParams) * w.params + abs(step.dFlops) * w.flops;
      if (!(resource > 0)) continue;
      let value: number;
      if (up) {
        if (!(budget.fill || step.dScore > 0) || state.params + step.dParams > budget.params || state.flops + step.dFlops > budget.flops) continue;
        value = step.dScore / resource;
        if (best && value <= bestValue) continue;
      } else {
        value = -step.dScore / resource;
        if (best && value >= bestValue) continue;
      }
      best = { ...step };
      bestValue = value;
    }
  }
  return best;
}

/** Removes least-damaging steps until `state` fits `budget`; false when no step is left. */
export function repair(space: SearchSpace, state: State, budget: Budget, counter?: Counter, onStep?: (state: State) => void): boolean {
  while (!fits(state, budget)) {
    const step = bestStep(space, state, false, budget, counter);
    if (!step) return false;
    space.apply(state, step);
    onStep?.(state);
  }
  return true;
}

/** Adds the most rewarding steps that still fit, while any raises the score (with `budget.fill`: while any fits). */
export function refill(space: SearchSpace, state: State, budget: Budget, counter?: Counter): void {
  for (;;) {
    const step = bestStep(space, state, true, budget, counter);
    if (!step) return;
    space.apply(state, step);
  }
}

/** Keeps descending (already within budget) to the smallest sub-network, reporting each state. */
export function descendToMinimum(space: SearchSpace, state: State, budget: Budget, onStep: (state: State) => void, counter?: Counter): void {
  for (;;) {
    const step = bestStep(space, state, false, budget, counter);
    if (!step) return;
    space.apply(state, step);
    onStep(state);
  }
}
