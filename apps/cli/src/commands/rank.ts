import { listAlphaStrategies, rankArchitectures, type InitMode, type RankReport, type ScoreVariant } from '@zerolm/core';
import { BENCHMARKS, loadBenchmark, loadBaselineCsv, type BenchmarkName } from '@zerolm/adapters';
import { scatterSvg } from '@zerolm/compare';
import type { CommandModule } from 'yargs';
import { UsageError } from '../errors';
import { writeFileAtomic } from '../output/files';
import { progressBar } from '../output/progress';
import { formatTable } from '../output/table';
import { alphaOption, jsonOption, measureOption, oneOf, positiveInteger, variantOption } from './options';

interface RankArgs {
  benchmark: BenchmarkName;
  data: string;
  baselines?: string;
  measure: string;
  variant: ScoreVariant;
  alphaStrategy: string;
  alpha: number;
  sampleSize: number;
  repeats: number;
  seed: number;
  init: InitMode;
  json: boolean;
  plot?: string;
}

export const rankCommand: CommandModule<object, RankArgs> = {
  command: 'rank',
  describe: 'score a benchmark search space and measure how well the proxy predicts trained quality',
  builder: (y) =>
    y
      .option('benchmark', { type: 'string', demandOption: true, describe: `which search space: ${Object.keys(BENCHMARKS).join(', ')}`, coerce: oneOf('benchmark', Object.keys(BENCHMARKS) as BenchmarkName[]) })
      .option('data', { type: 'string', demandOption: true, describe: 'the benchmark file (architectures with trained scores)' })
      .option('baselines', { type: 'string', describe: 'CSV of published proxies by ID (FlexiBERT: baseline_proxies.public.csv)' })
      .option('measure', measureOption)
      .option('variant', variantOption)
      .option('alpha-strategy', {
        type: 'string',
        default: 'sample',
        coerce: (name: string) => oneOf('alpha-strategy', listAlphaStrategies().map((s) => s.name))(name),
        describe: 'the strategy whose alpha scores the architectures (all are reported)',
      })
      .option('alpha', { ...alphaOption, describe: 'alpha of the fixed strategy' })
      .option('sample-size', { type: 'number', default: 50, describe: 'labelled architectures the sample strategy sees', coerce: positiveInteger('sample-size', 2) })
      .option('repeats', { type: 'number', default: 20, describe: 'random samples to average over', coerce: positiveInteger('repeats') })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the random samples', coerce: positiveInteger('seed', 0) })
      .option('init', {
        type: 'string',
        default: 'sampled',
        coerce: oneOf('init', ['sampled', 'expected'] as const),
        describe: 'draw weights as the benchmark initialised them, or use expected values (much faster)',
      })
      .option('json', jsonOption)
      .option('plot', { type: 'string', describe: 'write an SVG scatter of the ZeroLM score against the ground truth' }) as never,
  handler: async (args) => {
    const benchmark = await loadBenchmark(args.benchmark, args.data);
    if (args.sampleSize >= benchmark.entries.length) {
      throw new UsageError(`--sample-size (${args.sampleSize}) must be smaller than the number of architectures (${benchmark.entries.length})`);
    }
    const baselines = args.baselines ? loadBaselineCsv(args.baselines, benchmark.entries.map((e) => e.id)) : undefined;
    const progress = progressBar(`scoring ${benchmark.entries.length} architectures`);
    const report = rankArchitectures(benchmark.entries, {
      measure: args.measure,
      init: args.init,
      variant: args.variant,
      alphaStrategy: args.alphaStrategy,
      alpha: args.alpha,
      sampleSize: args.sampleSize,
      repeats: args.repeats,
      seed: args.seed,
      baselines,
      onProgress: (done, total) => progress.update(done, total),
    });
    progress.done();
    if (args.plot) {
      const zerolm = report.results.find((r) => r.proxy === 'zerolm' && r.alphaStrategy === report.alphaStrategy)!;
      writeFileAtomic(
        args.plot,
        scatterSvg({
          title: `${args.benchmark}: ZeroLM (${report.measure}, alpha ${report.alpha.toFixed(2)}) rho ${zerolm.spearman.mean.toFixed(3)}, tau ${zerolm.kendall.mean.toFixed(3)}`,
          xLabel: `ZeroLM score (${report.alphaStrategy} alpha)`,
          yLabel: benchmark.groundTruthLabel,
          points: report.architectures.map((a) => ({ x: a.score, y: a.groundTruth })),
        }),
      );
    }
    const output = { benchmark: args.benchmark, groundTruth: benchmark.groundTruthLabel, ...report };
    process.stdout.write(args.json ? `${JSON.stringify(output)}\n` : `${renderRank(args.benchmark, benchmark.groundTruthLabel, report)}\n`);
  },
};

export function renderRank(benchmark: string, groundTruth: string, report: RankReport): string {
  const pm = (s: { mean: number; std: number }) => `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)}`;
  const rows = report.results.map((r) => [
    r.alphaStrategy ? `zerolm (${r.alphaStrategy})` : r.proxy,
    r.alpha === undefined ? undefined : r.alpha.toFixed(2),
    pm(r.spearman),
    pm(r.kendall),
  ]);
  return [
    `${benchmark}: ${report.n} architectures, ground truth ${groundTruth}; measure ${report.measure}, init ${report.init}, ${report.variant} score`,
    `correlations on held-out architectures: ${report.repeats} random samples of ${report.sampleSize} (seed ${report.seed}), mean ± std`,
    '',
    formatTable([{ header: 'proxy' }, { header: 'alpha', numeric: true }, { header: 'spearman', numeric: true }, { header: 'kendall', numeric: true }], rows),
  ].join('\n');
}
