/**
 * Wall-clock latency of one forward pass: a few warm-up runs (session initialisation, allocator
 * growth, CUDA kernel selection), then `runs` timed runs summarised by their median and 90th
 * percentile.
 */

export interface LatencyStats {
  /** Median of the timed runs, milliseconds. */
  readonly medianMs: number;
  /** 90th percentile of the timed runs (linear interpolation between order statistics), milliseconds. */
  readonly p90Ms: number;
  readonly minMs: number;
  readonly runs: number;
  readonly warmup: number;
}

/**
 * The q-quantile of ascending `sorted` values, interpolating linearly between the two nearest
 * order statistics (numpy's default: position q * (n - 1)).
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile level must be in [0, 1] (got ${q})`);
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  const fraction = position - below;
  return (sorted[below] as number) * (1 - fraction) + (sorted[above] as number) * fraction;
}

/**
 * Latency of several models measured side by side: each warms up, then the timed runs go round
 * robin (one run of each model in turn), so that a change in machine load during the measurement
 * affects every model alike instead of whichever happened to run then.
 */
export async function measureLatencies(runners: readonly (() => Promise<unknown>)[], runs: number, warmup: number): Promise<LatencyStats[]> {
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be an integer >= 1 (got ${runs})`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`warm-up runs must be an integer >= 0 (got ${warmup})`);
  for (const run of runners) for (let i = 0; i < warmup; i++) await run();
  const times = runners.map((): number[] => []);
  for (let i = 0; i < runs; i++) {
    for (let m = 0; m < runners.length; m++) {
      const start = process.hrtime.bigint();
      await runners[m]!();
      times[m]!.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return times.map((list) => {
    const sorted = [...list].sort((a, b) => a - b);
    return { medianMs: quantile(sorted, 0.5), p90Ms: quantile(sorted, 0.9), minMs: sorted[0] as number, runs, warmup };
  });
}
