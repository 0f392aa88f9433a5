/**
 * The ZeroLM score from per-layer module capacities A_l (Attention) and F_l (FFN):
 *
 *   linear: sum_l [alpha * A_l + (1 - alpha) * F_l]
 *   log:    sum_l [alpha * log(1 + A_l) + (1 - alpha) * log(1 + F_l)]   (more robust to depth)
 *
 * Both are linear in alpha once the per-layer terms are summed, so an architecture reduces to two
 * numbers (its "components") and a sweep over alpha costs nothing.
 */

export type ScoreVariant = 'linear' | 'log';

export const SCORE_VARIANTS: readonly ScoreVariant[] = ['linear', 'log'];

export interface ScoreComponents {
  /** sum_l A_l (linear) or sum_l log(1 + A_l) (log) */
  attention: number;
  /** sum_l F_l (linear) or sum_l log(1 + F_l) (log) */
  ffn: number;
}

export function checkAlpha(alpha: number): void {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`alpha must be in [0, 1] (got ${alpha})`);
}

export function scoreComponents(
  layers: readonly { attention: number; ffn: number }[],
  variant: ScoreVariant = 'linear',
): ScoreComponents {
  let attention = 0;
  let ffn = 0;
  for (const layer of layers) {
    attention += variant === 'log' ? Math.log1p(layer.attention) : layer.attention;
    ffn += variant === 'log' ? Math.log1p(layer.ffn) : layer.ffn;
  }
  return { attention, ffn };
}

export function combine(components: ScoreComponents, alpha: number): number {
  checkAlpha(alpha);
  return alpha * components.attention + (1 - alpha) * components.ffn;
}

export function zerolmScore(
  layers: readonly { attention: number; ffn: number }[],
  alpha: number,
  variant: ScoreVariant = 'linear',
): number {
  return combine(scoreComponents(layers, variant), alpha);
}
