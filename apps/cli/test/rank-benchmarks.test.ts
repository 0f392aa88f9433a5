/**
 * `zerolm rank` on the paper's benchmarks (shared data), as a user runs it:
 *
 * - the targets, with DEFAULT settings (only --benchmark, --data and --json): FlexiBERT (350
 *   architectures) ZeroLM `sample` held-out Spearman >= 0.76 and Kendall >= 0.53, `heuristic`
 *   within 0.03 of it; LTS GPT-2 (200) `sample` Spearman >= 0.95, `heuristic` within 0.03;
 * - expected vs sampled init, the same runs plus one `--init expected` each: the Attention and
 *   FFN msv sums of EVERY architecture agree within 2%, and the held-out correlations of the
 *   ZeroLM score at alpha = 0.1, 0.2, ..., 1.0 and at the heuristic's alpha differ by < 0.01.
 *
 * Five CLI processes: two draw weights (~1.9 * 10^9 normals per benchmark, ~25 s each on the
 * 2-core machine), three use expected values (~0.5 s each). Skipped with a message without the shared
 * data; run for real with ZEROLM_REQUIRE_SHARED_DATA=1.
 */
import { evaluateScores, makeSplits } from '@zerolm/core';
import { readFileSync } from 'fs';
import { describeShared, sharedPaths } from '../../../packages/adapters/test/shared-data';
import { runCli } from './run-cli';

interface Summary {
  mean: number;
  std: number;
}

interface RankJson {
  benchmark: string;
  n: number;
  init: string;
  sampleSize: number;
  repeats: number;
  seed: number;
  results: Array<{ proxy: string; alphaStrategy?: string; alpha?: number; spearman: Summary; kendall: Summary }>;
  architectures: Array<{ id: string; groundTruth: number; attention: number; ffn: number }>;
}

/** One `zerolm rank --json` run; fails the calling hook with the CLI's message when it fails. */
function rank(args: string[]): RankJson {
  const result = runCli(['rank', ...args, '--json'], { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(`zerolm rank ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as RankJson;
}

function zerolmRow(report: RankJson, strategy: string): RankJson['results'][number] {
  const row = report.results.find((r) => r.proxy === 'zerolm' && r.alphaStrategy === strategy);
  if (!row) throw new Error(`no ZeroLM row for strategy ${strategy}`);
  return row;
}

/** Largest relative difference of the Attention and of the FFN msv sums, per architecture. */
function msvDisagreements(sampled: RankJson, expected: RankJson, tolerance: number): string[] {
  const out: string[] = [];
  sampled.architectures.forEach((drawn, i) => {
    const exact = expected.architectures[i]!;
    expect(drawn.id).toBe(exact.id);
    for (const part of ['attention', 'ffn'] as const) {
      const relative = Math.abs(drawn[part] - exact[part]) / exact[part];
      if (!(relative <= tolerance)) out.push(`${drawn.id} ${part}: sampled ${drawn[part]}, expected ${exact[part]} (${(100 * relative).toFixed(2)}%)`);
    }
  });
  return out;
}

/** Held-out mean Spearman and Kendall of alpha * attention + (1 - alpha) * ffn on the CLI's own splits. */
function correlationsAt(report: RankJson, alpha: number): { spearman: number; kendall: number } {
  const splits = makeSplits(report.n, report.sampleSize, report.repeats, report.seed);
  const scores = report.architectures.map((a) => alpha * a.attention + (1 - alpha) * a.ffn);
  const { spearman, kendall } = evaluateScores(scores, report.architectures.map((a) => a.groundTruth), splits);
  return { spearman: spearman.mean, kendall: kendall.mean };
}

const ALPHAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

/**
 * The alpha the label-free heuristic chose in each mode (a grid point, averaged over identical
 * repeats). Both modes are compared at each: the heuristic may land on neighbouring grid points
 * in the two modes (LTS GPT-2: 0.99 sampled, 1.00 expected), and then its two report rows differ
 * by more than the modes do at any one alpha (there: Kendall 0.8214 at 0.99 vs 0.8433 at 1.00,
 * because at alpha = 1 the expected Attention capacity takes only ~59 distinct values over 200
 * architectures and tau-b credits the ties).
 */
function heuristicAlphas(sampled: RankJson, expected: RankJson): number[] {
  return [...new Set([sampled, expected].map((r) => Math.round(zerolmRow(r, 'heuristic').alpha! * 100) / 100))];
}

/** Rows "alpha: sampled - expected" whose Spearman or Kendall differ by `limit` or more. */
function modeDifferences(sampled: RankJson, expected: RankJson, alphas: readonly number[], limit: number): string[] {
  const out: string[] = [];
  for (const alpha of alphas) {
    const a = correlationsAt(sampled, alpha);
    const b = correlationsAt(expected, alpha);
    for (const stat of ['spearman', 'kendall'] as const) {
      if (!(Math.abs(a[stat] - b[stat]) < limit)) out.push(`alpha ${alpha} ${stat}: sampled ${a[stat].toFixed(4)}, expected ${b[stat].toFixed(4)}`);
    }
  }
  return out;
}

describeShared(
  'zerolm rank on FlexiBERT (350 architectures)',
  () => {
    let sampled: RankJson;
    let expected: RankJson;
    beforeAll(() => {
      sampled = rank(['--benchmark', 'flexibert', '--data', sharedPaths.flexibertBenchmark]);
      expected = rank(['--benchmark', 'flexibert', '--data', sharedPaths.flexibertBenchmark, '--init', 'expected']);
    }, 300_000);

    it('meets the targets with default settings: sample rho >= 0.76, tau >= 0.53; heuristic within 0.03', () => {
      expect(sampled).toMatchObject({ benchmark: 'flexibert', n: 350, init: 'sampled', sampleSize: 50, repeats: 20 });
      const sample = zerolmRow(sampled, 'sample');
      expect(sample.spearman.mean).toBeGreaterThanOrEqual(0.76);
      expect(sample.kendall.mean).toBeGreaterThanOrEqual(0.53);
      expect(Math.abs(zerolmRow(sampled, 'heuristic').spearman.mean - sample.spearman.mean)).toBeLessThanOrEqual(0.03);
    });

    it('expected and sampled msv sums agree within 2% on every architecture (Attention and FFN)', () => {
      expect(msvDisagreements(sampled, expected, 0.02)).toEqual([]);
    });

    it('gives held-out correlations within 0.01 of each other at alpha = 0.1 ... 1.0 and at the heuristic alphas', () => {
      expect(modeDifferences(sampled, expected, [...ALPHAS, ...heuristicAlphas(sampled, expected)], 0.01)).toEqual([]);
    });

    // At alpha = 0 the score is the FFN capacity alone, and its expected value takes only 7
    // distinct values over the 350 architectures: the benchmark's metric code fixed the FFN
    // width, so only the number of stacked FFNs varies. Kendall's tau-b counts the many ties that
    // expected values make, while drawn weights break them at random, so Kendall differs between
    // the modes here by ~0.04 (0.0433 when measured: sampled 0.5358, expected 0.5791) and is not
    // asserted. Spearman, which averages tied ranks, still agrees (difference 0.0083).
    it('at alpha = 0: 7 distinct expected FFN values; Spearman within 0.01 (Kendall differs, see the comment)', () => {
      const distinct = new Set(expected.architectures.map((a) => a.ffn.toPrecision(9)));
      expect(distinct.size).toBe(7);
      expect(modeDifferences(sampled, expected, [0], 0.01).filter((line) => line.includes('spearman'))).toEqual([]);
    });
  },
  [sharedPaths.flexibertBenchmark],
);

describeShared(
  'zerolm rank on LTS GPT-2 (200 architectures)',
  () => {
    let sampled: RankJson;
    let expected: RankJson;
    beforeAll(() => {
      sampled = rank(['--benchmark', 'lts-gpt2', '--data', sharedPaths.ltsBenchmark]);
      expected = rank(['--benchmark', 'lts-gpt2', '--data', sharedPaths.ltsBenchmark, '--init', 'expected']);
    }, 300_000);

    it('meets the targets with default settings: sample rho >= 0.95; heuristic within 0.03', () => {
      expect(sampled).toMatchObject({ benchmark: 'lts-gpt2', n: 200, init: 'sampled' });
      const sample = zerolmRow(sampled, 'sample');
      expect(sample.spearman.mean).toBeGreaterThanOrEqual(0.95);
      expect(Math.abs(zerolmRow(sampled, 'heuristic').spearman.mean - sample.spearman.mean)).toBeLessThanOrEqual(0.03);
    });

    it('expected and sampled msv sums agree within 2% on every architecture (Attention and FFN)', () => {
      expect(msvDisagreements(sampled, expected, 0.02)).toEqual([]);
    });

    it('gives held-out correlations within 0.01 of each other at alpha = 0 ... 1.0 and at the heuristic alphas', () => {
      expect(modeDifferences(sampled, expected, [0, ...ALPHAS, ...heuristicAlphas(sampled, expected)], 0.01)).toEqual([]);
    });
  },
  [sharedPaths.ltsBenchmark],
);

describeShared(
  'zerolm rank --baselines on FlexiBERT',
  () => {
    it('reports every proxy column of the published CSV next to ZeroLM, params and depth', () => {
      const header = readFileSync(sharedPaths.flexibertBaselines, 'utf8').split('\n')[0]!.trim().split(',');
      const report = rank([
        '--benchmark', 'flexibert', '--data', sharedPaths.flexibertBenchmark, '--baselines', sharedPaths.flexibertBaselines, '--init', 'expected',
      ]);
      const others = report.results.filter((r) => r.proxy !== 'zerolm').map((r) => r.proxy);
      expect(others).toEqual(['params', 'depth', ...header.filter((c) => c !== 'ID' && c !== 'GLUE Score')]);
    });
  },
  [sharedPaths.flexibertBenchmark, sharedPaths.flexibertBaselines],
);
