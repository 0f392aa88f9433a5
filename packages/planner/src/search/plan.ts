/**
 * `planPrune`: which sub-network of a pretrained model to keep under a budget, scored by the
 * ZeroLM proxy, without data. Ranks units by a data-free importance, fills the capacity table
 * (onnxruntime or TypeScript), runs the greedy baseline and the evolutionary search, and returns
 * the best plan with everything a report or the exporter needs.
 */
import {
  checkAlpha,
  countParams,
  groupSize,
  resolveMeasure,
  SCORE_VARIANTS,
  type CapacityMeasure,
  type ModuleGraph,
  type PrunePlan,
  type ScoreVariant,
} from '@zerolm/core';
import type { HfModel } from '@zerolm/adapters';
import { performance } from 'perf_hooks';
import type { CalibrationOptions } from '../calibration/calibrate';
import type { Device } from '@zerolm/runtime';
import { openScoring, type ScoringBackend } from '../scoring/backend';
import type { CapacityTable } from '../scoring/capacity-table';
import type { AttentionImportanceMethod, FfnImportanceMethod, ImportanceDetails, UnitImportance } from '../scoring/importance';
import { planFromCounts, prepareRanking, type LayerCounts, type UnitRanking } from '../scoring/ranking';
import { DEFAULT_SEQ_LEN, graphFlops, resolveTarget } from './budget';
import { DEFAULT_EVALS, DEFAULT_POPULATION, evolutionarySearch, uniformSolution } from './evolution';
import { globalSolution } from './global';
import { greedySearch, type SearchPoint } from './greedy';
import { paretoFront } from './pareto';
import { DEFAULT_ROUND_TO, parseGranularity, SearchSpace, type Budget, type Granularity } from './space';

export type SearchMethod = 'evolutionary' | 'greedy' | 'uniform' | 'global';

export const SEARCH_METHODS: readonly SearchMethod[] = ['evolutionary', 'greedy', 'uniform', 'global'];

export type PlanPhase = 'calibration' | 'importance' | 'scoring' | 'greedy' | 'evolution' | 'latency';

export interface PlanOptions {
  /** Attention+FFN parameters to keep: a fraction in (0, 1] or an absolute count > 1. */
  targetParams?: number;
  /** FLOPs per token at `seqLen` to keep: a fraction in (0, 1] or an absolute count > 1. */
  targetFlops?: number;
  /**
   * Use the budget as a target size (default true): every candidate is refilled with the least
   * damaging units that still fit, so the plan lands at the budget rather than below it when the
   * measure rewards removing weak units. False: the highest-scoring candidate at or under budget.
   */
  fillBudget?: boolean;
  /** Sequence length of the FLOPs count (default 128). */
  seqLen?: number;
  /**
   * Latency limit, measured by `latencyOf` on candidates of the Pareto front (best score first)
   * until one fits. Slower: each check is an export and a timed run; the greedy baseline also
   * sweeps down to the smallest sub-network so the front spans every size.
   */
  maxLatencyMs?: number;
  /** Measures a plan's latency in milliseconds (the integrator exports and times it). */
  latencyOf?: (plan: PrunePlan) => Promise<number>;
  /** Consecutive latency checks skip candidates within this fraction of the full parameters (default 0.02). */
  latencyStep?: number;
  /** `heads`, `ffn`, `layers` (array or comma list; default heads,ffn). */
  granularity?: Granularity[] | string;
  /** FFN kept counts are multiples of this (the full width is always allowed); default 8. */
  roundTo?: number;
  /**
   * Importance rule (default `self-generated`, which runs the model: it needs `model`; without
   * one the default falls back to `magnitude`, and a named model rule is an error).
   */
  importance?: string | UnitImportance;
  /** The model folder `graph` was loaded from (`loadHfModel(dir)`), for rules that run the model. */
  model?: HfModel;
  /**
   * `self-generated`: how FFN neurons are ranked (`obs`, the default: exact greedy OBS up to 1024
   * neurons, 64 steps above; `chunked-obs`: 64 steps at any width; `energy`: the diagonal energy).
   */
  ffnImportance?: FfnImportanceMethod;
  /** `self-generated`: how attention units are ranked (`auto`, the default: KL where it fits, else block OBS; `kl`; `block-obs`). */
  attentionImportance?: AttentionImportanceMethod;
  /** Calibration of model rules: sequences S (default 32), tokens T (default 64), seed (default `seed`). */
  calibration?: Omit<CalibrationOptions, 'device' | 'onProgress'>;
  /** Capacity measure the search maximises (default `DEFAULT_PRUNE_MEASURE`, `nuclear-bound`). */
  measure?: CapacityMeasure | string;
  /** Attention/FFN balance in [0, 1] (default 0.5). */
  alpha?: number;
  variant?: ScoreVariant;
  /**
   * `evolutionary` (default), `greedy` alone, or `uniform`: no search, every layer keeps the same
   * fraction of its groups and neurons (the largest that fits), the baseline widths; or `global`:
   * the highest-scoring units of the whole model, for a rule whose scores compare across layers
   * (`flap`: its adaptive structure).
   */
  search?: SearchMethod;
  /** Candidate evaluations of the evolutionary search (default 2000). */
  evals?: number;
  population?: number;
  seed?: number;
  backend?: ScoringBackend;
  device?: Device;
  /** Mask rows per onnxruntime call (default 64). */
  batchSize?: number;
  onProgress?: (done: number, total: number, phase: PlanPhase) => void;
}

export interface PlannedLayer {
  index: number;
  dropped: boolean;
  /** Kept kv groups / of the original. */
  groups: number;
  originalGroups: number;
  /** Kept query heads / of the original. */
  heads: number;
  originalHeads: number;
  neurons: number;
  originalNeurons: number;
  keptGroups: number[];
  keptNeurons: number[];
}

/** A candidate on a Pareto front, with the per-layer counts that rebuild its plan (`planFromCounts`). */
export interface ParetoPoint {
  params: number;
  flops: number;
  score: number;
  source: SearchPoint['source'];
  counts: LayerCounts[];
}

export interface LatencyCheck {
  params: number;
  score: number;
  ms: number;
}

export interface PlanResult {
  model: string;
  family: string;
  plan: PrunePlan;
  layers: PlannedLayer[];
  /** Attention+FFN parameters. */
  params: { before: number; after: number; budget?: number };
  /** FLOPs per token at `seqLen`. */
  flops: { before: number; after: number; budget?: number; seqLen: number };
  /**
   * ZeroLM scores: of the full model, and of the plan's masked weights (`after`; `searched` is
   * the same number, the one the search ranked by; `prune` replaces `after` with the score of the
   * model it writes when a correction changes the kept weights).
   */
  score: { before: number; after: number; searched: number };
  measure: string;
  alpha: number;
  variant: ScoreVariant;
  /** How a model rule ranked the units (calibration, attention path, FFN method), or why it fell back. */
  importanceDetails?: ImportanceDetails;
  search: {
    method: SearchMethod;
    granularity: Granularity[];
    roundTo: number;
    importance: string;
    evals: number;
    population: number;
    seed: number;
    generations: number;
    fillBudget: boolean;
  };
  /** Who scored: `cuda` / `cpu` (onnxruntime) or `typescript`. */
  provider: string;
  /** Why the provider is not CUDA, or not onnxruntime. */
  providerReason?: string;
  /** Masked sub-networks onnxruntime scored to fill the capacity table. */
  scoredRows: number;
  /** Candidates the chosen search scored. */
  evaluations: number;
  /**
   * Phases in milliseconds: `rankingMs` holds `calibrationMs`, the wait for the calibration (its
   * sequences and statistics; 0 when a cached one was reused), and the importance rule's own work.
   */
  timings: { rankingMs: number; calibrationMs: number; scoringMs: number; greedyMs: number; evolutionMs: number; latencyMs: number; totalMs: number };
  /** Non-dominated (params, score) candidates within budget that the searches saw, params ascending. */
  pareto: ParetoPoint[];
  greedy: { plan: PrunePlan; counts: LayerCounts[]; params: number; flops: number; score: number; evaluations: number; pareto: ParetoPoint[] };
  /** The uniform-width solution the evolution started from (undefined for greedy-only). */
  uniform?: { counts: LayerCounts[]; params: number; flops: number; score: number };
  latency?: { maxMs: number; checks: LatencyCheck[]; ms: number };
  /** Units in importance order, per layer: rebuild any front point's plan with `planFromCounts`. */
  ranking: UnitRanking;
}

function positiveInteger(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be a whole number >= 1 (got ${v})`);
  return v;
}

function describeMinimum(granularity: readonly Granularity[], roundTo: number): string {
  const parts = [
    granularity.includes('heads') ? 'one key-value group' : 'every head',
    granularity.includes('ffn') ? `${roundTo} FFN neurons` : 'the whole FFN',
  ];
  return granularity.includes('layers') ? `${parts.join(' and ')} in a single layer` : `${parts.join(' and ')} per layer`;
}

/** Throws a clear error when no sub-network of the space meets the budget. */
function checkReachable(space: SearchSpace, budget: Budget, granularity: readonly Granularity[], roundTo: number, asked: string): void {
  const candidates: { params: number; flops: number }[] = [];
  if (space.canDrop) {
    for (let l = 0; l < space.layers; l++) candidates.push({ params: space.layerParams(l, 0, 0), flops: space.layerFlops(l, 0, 0) });
  } else {
    const g = space.minimumGenome();
    candidates.push({ params: space.params(g), flops: space.flops(g) });
  }
  if (candidates.some((c) => c.params <= budget.params && c.flops <= budget.flops)) return;
  const smallest = candidates.reduce((a, b) => (a.params <= b.params ? a : b));
  const missing = (['heads', 'ffn', 'layers'] as const).filter((g) => !granularity.includes(g)).map((g) => `'${g}'`);
  const hint = missing.length === 0 ? '' : `; add ${missing.join(' or ')} to the granularity to go smaller`;
  throw new Error(
    `the budget (${asked}) cannot be met: the smallest sub-network the search space allows (${describeMinimum(granularity, roundTo)}) ` +
      `has ${smallest.params} parameters and ${smallest.flops} FLOPs per token${hint}`,
  );
}

/**
 * The measure the pruning search maximises by default. `msv`, the paper's measure for ranking
 * architectures, is a mean over singular values: it rises as weak units go, so maximising it
 * under a budget empties some layers. `nuclear-bound` (min(m, n) * sqrt(msv)) only falls as
 * units go, and its per-layer widths gave lower held-out perplexity than uniform widths on both
 * trained models of ../shared/models, where msv's gave higher (the root README's quality table).
 */
export const DEFAULT_PRUNE_MEASURE = 'nuclear-bound';

/** Plans a structured pruning of `graph` (see the README's "Planning" section). */
export async function planPrune(graph: ModuleGraph, options: PlanOptions = {}): Promise<PlanResult> {
  const started = performance.now();
  if (graph.layers.length === 0) throw new Error(`model ${graph.name} has no layers to prune`);
  const measure = resolveMeasure(options.measure ?? DEFAULT_PRUNE_MEASURE);
  const alpha = options.alpha ?? 0.5;
  checkAlpha(alpha);
  const variant = options.variant ?? 'linear';
  if (!SCORE_VARIANTS.includes(variant)) throw new Error(`unknown score variant "${variant}" (known: ${SCORE_VARIANTS.join(', ')})`);
  const method = options.search ?? 'evolutionary';
  if (!SEARCH_METHODS.includes(method)) throw new Error(`unknown search "${method}" (known: ${SEARCH_METHODS.join(', ')})`);
  const granularity = parseGranularity(options.granularity);
  const roundTo = positiveInteger(options.roundTo, DEFAULT_ROUND_TO, 'roundTo');
  const seqLen = positiveInteger(options.seqLen, DEFAULT_SEQ_LEN, 'seqLen');
  const evals = positiveInteger(options.evals, DEFAULT_EVALS, 'evals');
  const population = positiveInteger(options.population, DEFAULT_POPULATION, 'population');
  if (population < 2) throw new Error(`population must be at least 2 (got ${population})`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`seed must be a whole number (got ${seed})`);
  if (options.maxLatencyMs !== undefined) {
    if (!(options.maxLatencyMs > 0)) throw new Error(`maxLatencyMs must be a positive number of milliseconds (got ${options.maxLatencyMs})`);
    if (!options.latencyOf) throw new Error('maxLatencyMs needs a latencyOf(plan) callback that measures a candidate');
  }
  const latencyStep = options.latencyStep ?? 0.02;
  if (!(latencyStep >= 0 && latencyStep < 1)) throw new Error(`latencyStep must be in [0, 1) (got ${latencyStep})`);
  if (options.targetParams === undefined && options.targetFlops === undefined && options.maxLatencyMs === undefined) {
    throw new Error('no budget: give targetParams, targetFlops or maxLatencyMs');
  }
  const progress = options.onProgress;

  // Costs and budgets need no scores: the space reads the table only once the backend below has
  // filled it, which needs the ranking, which comes after the cheap checks.
  let table: CapacityTable | undefined;
  const space = new SearchSpace(
    graph,
    {
      attention: (l, g) => table!.attention(l, g),
      ffn: (l, n) => table!.ffn(l, n),
    },
    { alpha, variant, granularity, roundTo, seqLen },
  );
  const paramsBudget = resolveTarget(options.targetParams, space.fullParams, 'targetParams');
  const flopsBudget = resolveTarget(options.targetFlops, space.fullFlops, 'targetFlops');
  const budget: Budget = {
    params: paramsBudget ?? Infinity,
    flops: flopsBudget ?? Infinity,
    fill: (options.fillBudget ?? true) && (paramsBudget !== undefined || flopsBudget !== undefined),
  };
  const asked = [
    paramsBudget === undefined ? undefined : `targetParams ${options.targetParams} = ${Math.floor(paramsBudget)} parameters`,
    flopsBudget === undefined ? undefined : `targetFlops ${options.targetFlops} = ${Math.floor(flopsBudget)} FLOPs per token`,
  ].filter((s) => s !== undefined).join(', ');
  checkReachable(space, budget, granularity, roundTo, asked);

  // Ranking reads every weight, and model rules run the model (seconds to minutes on large
  // models): only after the cheap checks above.
  const rankingStarted = performance.now();
  const { ranking, details: importanceDetails, calibrationMs } = await prepareRanking(graph, {
    ...(options.importance === undefined ? {} : { importance: options.importance }),
    seed,
    ...(options.model ? { model: options.model } : {}),
    device: options.device ?? 'auto',
    ...(options.calibration ? { calibration: options.calibration } : {}),
    ...(options.ffnImportance ? { ffnImportance: options.ffnImportance } : {}),
    ...(options.attentionImportance ? { attentionImportance: options.attentionImportance } : {}),
    ...(progress ? { onProgress: progress } : {}),
  });
  const rankingMs = performance.now() - rankingStarted;

  progress?.(0, 1, 'scoring');
  const scoring = await openScoring(graph, ranking, space.allowed, {
    measure,
    alpha,
    backend: options.backend ?? 'auto',
    device: options.device ?? 'auto',
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
  });
  table = scoring.table;
  progress?.(1, 1, 'scoring');

  const sweep = options.maxLatencyMs !== undefined;
  const greedy = greedySearch(space, budget, { sweep, ...(progress ? { onProgress: (d, t) => progress(d, t, 'greedy') } : {}) });
  let best = greedy.best;
  let seen: SearchPoint[] = greedy.points;
  let evaluations = greedy.evaluations;
  let generations = 0;
  let evolutionMs = 0;
  let uniform: SearchPoint | undefined;
  if (method === 'uniform') {
    uniform = uniformSolution(space, budget);
    if (!uniform) throw new Error('no uniform-width sub-network meets the budget (try another search, or the layers granularity)');
    best = uniform;
    seen = [...greedy.points, uniform];
    evaluations = 1;
  } else if (method === 'global') {
    const chosen = globalSolution(space, budget, ranking);
    if (!chosen) throw new Error('no sub-network meets the budget with every layer kept (try the layers granularity)');
    best = chosen;
    seen = [...greedy.points, chosen];
    evaluations = 1;
  } else if (method === 'evolutionary') {
    uniform = uniformSolution(space, budget);
    const evolution = evolutionarySearch(space, budget, uniform ? [greedy.best, uniform] : [greedy.best], {
      evals,
      population,
      seed,
      ...(progress ? { onProgress: (d, t) => progress(d, t, 'evolution') } : {}),
    });
    best = evolution.best;
    seen = [...greedy.points, ...evolution.points];
    evaluations = evolution.evaluations;
    generations = evolution.generations;
    evolutionMs = evolution.ms;
  }

  const toPareto = (p: SearchPoint): ParetoPoint => ({ params: p.params, flops: p.flops, score: p.score, source: p.source, counts: space.counts(p.genome) });
  const front = paretoFront(seen);

  let latency: PlanResult['latency'];
  if (options.maxLatencyMs !== undefined) {
    const latencyStarted = performance.now();
    const checks: LatencyCheck[] = [];
    let chosen: SearchPoint | undefined;
    let lastParams = Infinity;
    const ordered = [...front].sort((a, b) => b.score - a.score);
    for (const [i, candidate] of ordered.entries()) {
      const last = i === ordered.length - 1;
      if (!last && candidate.params > lastParams - latencyStep * space.fullParams) continue;
      const ms = await options.latencyOf!(planFromCounts(ranking, space.counts(candidate.genome)));
      checks.push({ params: candidate.params, score: candidate.score, ms });
      progress?.(i + 1, ordered.length, 'latency');
      if (ms <= options.maxLatencyMs) {
        chosen = candidate;
        break;
      }
      lastParams = candidate.params;
    }
    if (!chosen) {
      const fastest = Math.min(...checks.map((c) => c.ms));
      throw new Error(`no candidate on the Pareto front meets maxLatencyMs ${options.maxLatencyMs} (fastest measured: ${fastest.toFixed(2)} ms)`);
    }
    best = chosen;
    latency = { maxMs: options.maxLatencyMs, checks, ms: performance.now() - latencyStarted };
  }

  const counts = space.counts(best.genome);
  const plan = planFromCounts(ranking, counts);
  const greedyCounts = space.counts(greedy.best.genome);
  const full = space.state(space.fullGenome());
  const result: PlanResult = {
    model: graph.name,
    family: graph.family,
    plan,
    layers: graph.layers.map((layer, l) => {
      const c = counts[l]!;
      const lp = plan.layers[l]!;
      return {
        index: layer.index,
        dropped: c.dropped,
        groups: c.groups,
        originalGroups: layer.attention.kvHeads,
        heads: c.dropped ? 0 : c.groups === layer.attention.kvHeads ? layer.attention.heads : c.groups * groupSize(layer.attention),
        originalHeads: layer.attention.heads,
        neurons: c.neurons,
        originalNeurons: layer.ffn.width,
        keptGroups: lp.keptGroups,
        keptNeurons: lp.keptNeurons,
      };
    }),
    params: { before: countParams(graph).modules, after: best.params, ...(paramsBudget === undefined ? {} : { budget: paramsBudget }) },
    flops: { before: graphFlops(graph, seqLen), after: best.flops, seqLen, ...(flopsBudget === undefined ? {} : { budget: flopsBudget }) },
    score: { before: full.score, after: best.score, searched: best.score },
    measure: measure.name,
    alpha,
    variant,
    ...(importanceDetails ? { importanceDetails } : {}),
    search: { method, granularity, roundTo, importance: ranking.importance, evals, population, seed, generations, fillBudget: budget.fill ?? false },
    provider: scoring.provider,
    ...(scoring.reason === undefined ? {} : { providerReason: scoring.reason }),
    scoredRows: scoring.rows,
    evaluations,
    timings: {
      rankingMs,
      calibrationMs,
      scoringMs: scoring.ms,
      greedyMs: greedy.ms,
      evolutionMs,
      latencyMs: latency?.ms ?? 0,
      totalMs: performance.now() - started,
    },
    pareto: front.map(toPareto),
    greedy: {
      plan: planFromCounts(ranking, greedyCounts),
      counts: greedyCounts,
      params: greedy.best.params,
      flops: greedy.best.flops,
      score: greedy.best.score,
      evaluations: greedy.evaluations,
      pareto: paretoFront(greedy.points).map(toPareto),
    },
    ...(uniform ? { uniform: { counts: space.counts(uniform.genome), params: uniform.params, flops: uniform.flops, score: uniform.score } } : {}),
    ...(latency ? { latency } : {}),
    ranking,
  };
  return result;
}

/** Evolutionary and greedy scores at the same budget (what the planning benchmark prints). */
export interface SearchComparison {
  model: string;
  budgetParams?: number;
  budgetFlops?: number;
  evolution: { score: number; params: number; evaluations: number; ms: number };
  greedy: { score: number; params: number; evaluations: number; ms: number };
  uniform?: { score: number; params: number };
  /** evolution score - greedy score (never negative: greedy seeds the evolution). */
  gain: number;
  provider: string;
}

/** Runs `planPrune` with the evolutionary search and reports it next to its greedy baseline. */
export async function compareSearches(graph: ModuleGraph, options: PlanOptions): Promise<SearchComparison> {
  const result = await planPrune(graph, { ...options, search: 'evolutionary' });
  return {
    model: result.model,
    ...(result.params.budget === undefined ? {} : { budgetParams: result.params.budget }),
    ...(result.flops.budget === undefined ? {} : { budgetFlops: result.flops.budget }),
    evolution: { score: result.score.after, params: result.params.after, evaluations: result.evaluations, ms: result.timings.evolutionMs },
    greedy: { score: result.greedy.score, params: result.greedy.params, evaluations: result.greedy.evaluations, ms: result.timings.greedyMs },
    ...(result.uniform ? { uniform: { score: result.uniform.score, params: result.uniform.params } } : {}),
    gain: result.score.after - result.greedy.score,
    provider: result.provider,
  };
}
