/**
 * Rank correlation, as used to judge how well a proxy orders architectures: Spearman's rho with
 * average ranks for ties, and Kendall's tau-b (tie-corrected). Both return NaN when a side is
 * constant (no ordering to agree with).
 */

type Numbers = ArrayLike<number>;

// Bound once: global lookups are slow inside Jest's vm context and these run in O(n^2) loops.
const { sign, sqrt } = Math;

function checkPair(x: Numbers, y: Numbers): void {
  if (x.length !== y.length) throw new Error(`rank correlation needs equal lengths (got ${x.length} and ${y.length})`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i] as number) || !Number.isFinite(y[i] as number)) {
      throw new Error(`rank correlation needs finite values (index ${i}: ${x[i]}, ${y[i]})`);
    }
  }
}

/** Ranks 1..n, ties sharing the average of the ranks they span. */
export function averageRanks(values: Numbers): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const ranks = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && values[order[j + 1] as number] === values[order[i] as number]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = rank;
    i = j + 1;
  }
  return ranks;
}

export function pearson(x: Numbers, y: Numbers): number {
  checkPair(x, y);
  const n = x.length;
  if (n < 2) return NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i] as number;
    my += y[i] as number;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (x[i] as number) - mx;
    const dy = (y[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / sqrt(sxx * syy);
}

/** Spearman's rho: Pearson correlation of average ranks. */
export function spearman(x: Numbers, y: Numbers): number {
  checkPair(x, y);
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * Kendall's tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)), n0 = n(n-1)/2, n1 and n2 the pairs tied
 * in x and in y. O(n^2): the benchmarks here have at most a few thousand points.
 */
export function kendallTauB(x: Numbers, y: Numbers): number {
  checkPair(x, y);
  const n = x.length;
  let concordantMinusDiscordant = 0;
  let tiedX = 0;
  let tiedY = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[i] as number;
    const yi = y[i] as number;
    for (let j = i + 1; j < n; j++) {
      const dx = sign((x[j] as number) - xi);
      const dy = sign((y[j] as number) - yi);
      if (dx === 0) tiedX++;
      if (dy === 0) tiedY++;
      concordantMinusDiscordant += dx * dy;
    }
  }
  const pairs = (n * (n - 1)) / 2;
  const denominator = sqrt((pairs - tiedX) * (pairs - tiedY));
  return denominator === 0 ? NaN : concordantMinusDiscordant / denominator;
}

export function mean(values: Numbers): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] as number;
  return values.length === 0 ? NaN : s / values.length;
}

/** Population standard deviation (ddof = 0), as numpy's default. */
export function std(values: Numbers): number {
  const m = mean(values);
  let s = 0;
  for (let i = 0; i < values.length; i++) s += ((values[i] as number) - m) ** 2;
  return values.length === 0 ? NaN : sqrt(s / values.length);
}
