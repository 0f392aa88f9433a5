import { evaluateScores, evaluateStrategy, type Summary } from '../alpha/evaluate';
import { getAlphaStrategy, listAlphaStrategies, makeSplits } from '../alpha/strategies';
import type { CapacityMeasure } from '../measures/measure';
import { countParams, type ModuleGraph } from '../module-graph';
import { graphCapacity, resolveMeasure, type InitMode } from '../proxy/capacity';
import { getProxy } from '../proxy/registry';
import { combine, scoreComponents, type ScoreVariant } from '../proxy/score';

export interface RankEntry {
  id: string;
  graph: ModuleGraph;
  /** Higher = better (negate perplexities). */
  groundTruth: number;
}

export interface RankOptions {
  measure?: CapacityMeasure | string;
  init?: InitMode;
  variant?: ScoreVariant;
  /** The strategy whose alpha scores `architectures[]` (default `sample`). */
  alphaStrategy?: string;
  /** Alpha for the `fixed` strategy (default 0.5). */
  alpha?: number;
  sampleSize?: number;
  repeats?: number;
  seed?: number;
  /** Extra baseline proxies, one value per entry (same order), higher = better. */
  baselines?: Record<string, ArrayLike<number>>;
  /** Called after each architecture is scored. */
  onProgress?: (done: number, total: number) => void;
}

export interface RankResult {
  proxy: string;
  /** Only for ZeroLM rows. */
  alphaStrategy?: string;
  /** Mean alpha over the repeats (ZeroLM rows). */
  alpha?: number;
  /** The alpha chosen on each split (ZeroLM rows), in split order. */
  alphas?: number[];
  spearman: Summary;
  kendall: Summary;
}

export interface RankedArchitecture {
  id: string;
  groundTruth: number;
  params: number;
  layers: number;
  /** Summed Attention capacity (linear) or sum of log(1 + A_l) (log variant). */
  attention: number;
  ffn: number;
  /** ZeroLM at the alpha of the chosen strategy. */
  score: number;
}

export interface RankReport {
  n: number;
  measure: string;
  init: InitMode;
  variant: ScoreVariant;
  alphaStrategy: string;
  alpha: number;
  sampleSize: number;
  repeats: number;
  seed: number;
  results: RankResult[];
  architectures: RankedArchitecture[];
}

/**
 * Scores every architecture once (its two ZeroLM components), then evaluates every registered alpha strategy
 * and each baseline on the same random splits: alpha is chosen on a labelled sample (where a
 * strategy uses labels) and every correlation is reported on the held-out rest, so all rows of
 * the table are comparable.
 */
export function rankArchitectures(entries: readonly RankEntry[], options: RankOptions = {}): RankReport {
  const measure = resolveMeasure(options.measure);
  const init = options.init ?? 'sampled';
  const variant = options.variant ?? 'linear';
  const sampleSize = options.sampleSize ?? 50;
  const repeats = options.repeats ?? 20;
  const seed = options.seed ?? 0;
  const chosen = options.alphaStrategy ?? 'sample';
  getAlphaStrategy(chosen);
  const n = entries.length;
  const splits = makeSplits(n, sampleSize, repeats, seed);

  const attention = new Float64Array(n);
  const ffn = new Float64Array(n);
  const params = new Float64Array(n);
  const depth = new Float64Array(n);
  const groundTruth = new Float64Array(n);
  entries.forEach((entry, i) => {
    const capacity = graphCapacity(entry.graph, { measure, init });
    const components = scoreComponents(
      capacity.layers.map((l) => ({ attention: l.attention.capacity, ffn: l.ffn.capacity })),
      variant,
    );
    attention[i] = components.attention;
    ffn[i] = components.ffn;
    params[i] = countParams(entry.graph).modules;
    depth[i] = getProxy('depth').components(entry.graph).attention;
    if (!Number.isFinite(entry.groundTruth)) throw new Error(`architecture ${entry.id} has no finite ground truth`);
    groundTruth[i] = entry.groundTruth;
    options.onProgress?.(i + 1, n);
  });

  const input = { attention, ffn, params, groundTruth };
  const results: RankResult[] = [];
  let chosenAlpha = options.alpha ?? 0.5;
  for (const strategy of listAlphaStrategies()) {
    const evaluation = evaluateStrategy(strategy, input, splits, { alpha: options.alpha });
    results.push({ proxy: 'zerolm', alphaStrategy: strategy.name, alpha: evaluation.alpha, alphas: evaluation.alphas, spearman: evaluation.spearman, kendall: evaluation.kendall });
    if (strategy.name === chosen) chosenAlpha = evaluation.alpha;
  }
  results.push({ proxy: 'params', ...evaluateScores(params, groundTruth, splits) });
  results.push({ proxy: 'depth', ...evaluateScores(depth, groundTruth, splits) });
  for (const [name, values] of Object.entries(options.baselines ?? {})) {
    if (values.length !== n) throw new Error(`baseline "${name}" has ${values.length} values for ${n} architectures`);
    results.push({ proxy: name, ...evaluateScores(values, groundTruth, splits) });
  }

  const architectures = entries.map((entry, i) => ({
    id: entry.id,
    groundTruth: groundTruth[i] as number,
    params: params[i] as number,
    layers: depth[i] as number,
    attention: attention[i] as number,
    ffn: ffn[i] as number,
    score: combine({ attention: attention[i] as number, ffn: ffn[i] as number }, chosenAlpha),
  }));
  return {
    n,
    measure: measure.name,
    init,
    variant,
    alphaStrategy: chosen,
    alpha: chosenAlpha,
    sampleSize,
    repeats,
    seed,
    results,
    architectures,
  };
}
