/**
 * Section `rank`: how long `zerolm rank` takes on FlexiBERT's 350 architectures, as whole CLI
 * processes, with expected-value capacities (goal: under 1 s) and with drawn weights (goal: under
 * 2 minutes; ~1.9 * 10^9 normals).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { goalVerdict, type BenchContext, type BenchSection } from './registry';
import { formatTiming, timeProcess } from './timing';

/** The FlexiBERT benchmark file inside the shared folder. */
export const FLEXIBERT_FILE = 'benchmarks/flexibert/BERT_benchmark.public.json';

interface RankCase {
  readonly init: 'expected' | 'sampled';
  /** Goal for the median wall time, seconds. */
  readonly goalSeconds: number;
  readonly runs: number;
  readonly quickRuns: number;
  readonly warmups: number;
}

const CASES: readonly RankCase[] = [
  { init: 'expected', goalSeconds: 1, runs: 5, quickRuns: 3, warmups: 1 },
  { init: 'sampled', goalSeconds: 120, runs: 3, quickRuns: 1, warmups: 0 },
];

export const rankSection: BenchSection = {
  name: 'rank',
  title: 'zerolm rank --benchmark flexibert (350 architectures), wall time of the whole CLI process',
  async run(context: BenchContext) {
    const data = path.join(context.sharedDir, FLEXIBERT_FILE);
    const cli = path.join(context.repoRoot, 'apps/cli/dist/main.js');
    if (!existsSync(data)) {
      context.print(`skipped: no FlexiBERT benchmark at ${data} (give --data-dir or set ZEROLM_SHARED_DIR)`);
      return;
    }
    if (!existsSync(cli)) {
      context.print(`skipped: the CLI is not built (${cli}); run npm run bench, which builds first`);
      return;
    }
    context.print(`data: ${data}`);
    for (const c of CASES) {
      const args = [cli, 'rank', '--benchmark', 'flexibert', '--data', data, '--init', c.init];
      const timing = timeProcess(process.execPath, args, {
        runs: context.quick ? c.quickRuns : c.runs,
        warmups: c.warmups,
        cwd: context.repoRoot,
        timeoutMs: Math.max(600_000, 5 * c.goalSeconds * 1000),
      });
      const goal = c.goalSeconds < 60 ? `${c.goalSeconds} s` : `${c.goalSeconds / 60} min`;
      context.print(`${`--init ${c.init}`.padEnd(17)}${formatTiming(timing)}; goal < ${goal}: ${goalVerdict(timing.median, c.goalSeconds)}`);
    }
  },
};
