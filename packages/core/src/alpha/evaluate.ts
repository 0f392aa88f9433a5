import { kendallTauB, mean, spearman, std } from '../stats/rank';
import type { AlphaStrategy, Split } from './strategies';

export interface Summary {
  mean: number;
  std: number;
  /** The value on each split's held-out architectures, in split order. */
  repeats: number[];
}

export interface StrategyEvaluation {
  strategy: string;
  /** Mean of the alphas chosen over the splits. */
  alpha: number;
  alphas: number[];
  spearman: Summary;
  kendall: Summary;
}

export interface RankingInput {
  attention: ArrayLike<number>;
  ffn: ArrayLike<number>;
  /** Attention+FFN parameter counts (structure, available to label-free strategies). */
  params: ArrayLike<number>;
  /** Higher = better (negate perplexities before passing them). */
  groundTruth: ArrayLike<number>;
}

function pick(values: ArrayLike<number>, indices: readonly number[]): Float64Array {
  return Float64Array.from(indices, (i) => values[i] as number);
}

function summarize(values: number[]): Summary {
  return { mean: mean(values), std: std(values), repeats: values };
}

/**
 * Chooses alpha with `strategy` on each split and reports rank correlations on that split's
 * held-out architectures. A strategy that does not use labels never receives any.
 */
export function evaluateStrategy(
  strategy: AlphaStrategy,
  input: RankingInput,
  splits: readonly Split[],
  options: { alpha?: number } = {},
): StrategyEvaluation {
  const alphas: number[] = [];
  const rhos: number[] = [];
  const taus: number[] = [];
  // Label-free strategies see no split-specific information, so their alpha is computed once.
  let labelFreeAlpha: number | undefined;
  for (const split of splits) {
    let alpha: number;
    if (strategy.usesLabels) {
      alpha = strategy.choose({
        attention: input.attention,
        ffn: input.ffn,
        params: input.params,
        sample: split.sample,
        sampleLabels: pick(input.groundTruth, split.sample),
        alpha: options.alpha,
      });
    } else {
      labelFreeAlpha ??= strategy.choose({ attention: input.attention, ffn: input.ffn, params: input.params, sample: split.sample, alpha: options.alpha });
      alpha = labelFreeAlpha;
    }
    const scores = Float64Array.from(split.heldOut, (i) => alpha * (input.attention[i] as number) + (1 - alpha) * (input.ffn[i] as number));
    const truth = pick(input.groundTruth, split.heldOut);
    alphas.push(alpha);
    rhos.push(spearman(scores, truth));
    taus.push(kendallTauB(scores, truth));
  }
  return { strategy: strategy.name, alpha: mean(alphas), alphas, spearman: summarize(rhos), kendall: summarize(taus) };
}

/** Correlations of a fixed score vector on each split's held-out part (for baselines). */
export function evaluateScores(scores: ArrayLike<number>, groundTruth: ArrayLike<number>, splits: readonly Split[]): { spearman: Summary; kendall: Summary } {
  const rhos: number[] = [];
  const taus: number[] = [];
  for (const split of splits) {
    const s = pick(scores, split.heldOut);
    const t = pick(groundTruth, split.heldOut);
    rhos.push(spearman(s, t));
    taus.push(kendallTauB(s, t));
  }
  return { spearman: summarize(rhos), kendall: summarize(taus) };
}
