import { Rng } from '../random';
import { createRegistry } from '../registry';
import { kendallTauB } from '../stats/rank';

/**
 * Alpha strategies choose the balance between Attention and FFN capacity. An architecture's score
 * is `alpha * attention[i] + (1 - alpha) * ffn[i]` (see proxy/score.ts), so a strategy only
 * sees those two component vectors, and, if it declares `usesLabels`, the ground truth of the
 * labelled sample it is given. A label-free strategy is never handed any ground truth.
 */
export interface AlphaContext {
  attention: ArrayLike<number>;
  ffn: ArrayLike<number>;
  /** Parameter count of each architecture's Attention and FFN modules (structure, not a label). */
  params: ArrayLike<number>;
  /** Indices of the labelled sample (for label-using strategies: the architectures whose truth is known). */
  sample: readonly number[];
  /** Ground truth of `sample[k]` at position k; only given to strategies with `usesLabels`. */
  sampleLabels?: ArrayLike<number>;
  /** The value asked for on the command line (`fixed`). */
  alpha?: number;
}

export interface AlphaStrategy {
  readonly name: string;
  readonly description: string;
  readonly usesLabels: boolean;
  choose(context: AlphaContext): number;
}

/** The alpha grid 0, 0.01, ..., 1 (integer steps, so 0.07 is exactly 7/100). */
export const ALPHA_GRID: readonly number[] = Array.from({ length: 101 }, (_, i) => i / 100);

function scoresAt(context: AlphaContext, indices: readonly number[], alpha: number): Float64Array {
  const out = new Float64Array(indices.length);
  indices.forEach((i, k) => {
    out[k] = alpha * (context.attention[i] as number) + (1 - alpha) * (context.ffn[i] as number);
  });
  return out;
}

/**
 * The grid point in the middle of the widest run of grid points that reach the maximum (to within
 * 1e-12); runs of equal width: the first. NaN values never count as maxima.
 */
export function middleOfBestPlateau(values: readonly number[], grid: readonly number[] = ALPHA_GRID): number {
  let best = -Infinity;
  for (const v of values) if (v > best) best = v;
  if (best === -Infinity) return 0.5;
  let bestStart = 0;
  let bestLength = 0;
  for (let i = 0; i < values.length; ) {
    if (!(Math.abs((values[i] as number) - best) <= 1e-12)) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < values.length && Math.abs((values[j + 1] as number) - best) <= 1e-12) j++;
    if (j - i + 1 > bestLength) {
      bestStart = i;
      bestLength = j - i + 1;
    }
    i = j + 1;
  }
  return grid[bestStart + Math.floor((bestLength - 1) / 2)] as number;
}

const sampleStrategy: AlphaStrategy = {
  name: 'sample',
  description: 'benchmark sampling: alpha on the 0..1 grid (step 0.01) with the best Kendall tau on a labelled sample',
  usesLabels: true,
  choose(context) {
    const labels = context.sampleLabels;
    if (!labels || labels.length !== context.sample.length) throw new Error('the sample strategy needs the labels of its sample');
    const taus = ALPHA_GRID.map((alpha) => kendallTauB(scoresAt(context, context.sample, alpha), labels));
    return middleOfBestPlateau(taus);
  },
};

/**
 * Label-free: the alpha whose score agrees best (Kendall) with the architectures' parameter counts.
 *
 * Why it should work: across a search space, trained quality grows with model size (the scaling
 * laws), but the two modules carry that size very differently from one space to the next (in
 * LTS GPT-2 the layer count times the width, which Attention capacity tracks, is what varies; in
 * FlexiBERT the stacked FFNs are). Which module's capacity is informative is therefore a property
 * of the search space, and the parameter count, known for every candidate without training,
 * reveals it: the alpha under which the capacity score orders the space most like size does tells
 * which module carries the size signal. The score itself stays a capacity score; size only
 * decides the balance. It never sees a trained result, so it cannot overfit one.
 */
const heuristicStrategy: AlphaStrategy = {
  name: 'heuristic',
  description: 'label-free: alpha whose score agrees best (Kendall) with the parameter count of the architectures',
  usesLabels: false,
  choose(context) {
    const all = Array.from({ length: context.attention.length }, (_, i) => i);
    const params = Float64Array.from(all, (i) => context.params[i] as number);
    return middleOfBestPlateau(ALPHA_GRID.map((alpha) => tauOrMinusOne(scoresAt(context, all, alpha), params)));
  },
};

/**
 * Label-free alternative: the alpha at which the score is equally rank-correlated with the
 * Attention and with the FFN component, so that neither module dominates the ordering (invariant
 * to rescaling either component). Kept for comparison: it is the natural "no preference" rule,
 * but on LTS GPT-2 it lands far from the sampled alpha (see the README's ranking table).
 */
const balanceStrategy: AlphaStrategy = {
  name: 'balance',
  description: 'label-free: alpha where the score is equally Kendall-correlated with the Attention and the FFN capacity',
  usesLabels: false,
  choose(context) {
    const all = Array.from({ length: context.attention.length }, (_, i) => i);
    const attention = Float64Array.from(all, (i) => context.attention[i] as number);
    const ffn = Float64Array.from(all, (i) => context.ffn[i] as number);
    return middleOfBestPlateau(
      ALPHA_GRID.map((alpha) => {
        const score = scoresAt(context, all, alpha);
        return -Math.abs(tauOrMinusOne(score, attention) - tauOrMinusOne(score, ffn));
      }),
    );
  },
};

/** Kendall tau, with "no ordering" (a constant side) counted as the worst agreement. */
function tauOrMinusOne(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const tau = kendallTauB(x, y);
  return Number.isNaN(tau) ? -1 : tau;
}

const fixedStrategy: AlphaStrategy = {
  name: 'fixed',
  description: 'the alpha given with --alpha (default 0.5)',
  usesLabels: false,
  choose(context) {
    return context.alpha ?? 0.5;
  },
};

const strategies = createRegistry<AlphaStrategy>('alpha strategy');

export const registerAlphaStrategy = strategies.register;
export const getAlphaStrategy = strategies.get;
export const listAlphaStrategies = strategies.list;

for (const s of [sampleStrategy, heuristicStrategy, balanceStrategy, fixedStrategy]) registerAlphaStrategy(s);

export interface Split {
  /** Labelled sample. */
  sample: number[];
  /** Everything else: where correlations are reported. */
  heldOut: number[];
}

/** `repeats` random splits of 0..n-1 into a sample of `sampleSize` and the rest, seeded. */
export function makeSplits(n: number, sampleSize: number, repeats: number, seed: number): Split[] {
  if (!Number.isInteger(sampleSize) || sampleSize < 2) throw new Error(`sample size must be an integer >= 2 (got ${sampleSize})`);
  if (sampleSize >= n) throw new Error(`sample size (${sampleSize}) must be smaller than the number of architectures (${n})`);
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`repeats must be a positive integer (got ${repeats})`);
  const rng = new Rng(seed);
  return Array.from({ length: repeats }, () => {
    const order = rng.permutation(n);
    return { sample: order.slice(0, sampleSize), heldOut: order.slice(sampleSize) };
  });
}
