/**
 * The project's benchmarks: `npm run bench` (build, then `node tools/dist/bench/index.js`).
 *
 *   node tools/dist/bench/index.js [--only NAME[,NAME]] [--quick] [--data-dir DIR]
 *
 * Runs every registered section in order (or the ones named by --only), each printing its own
 * figures with any goal next to its figure. A section whose inputs are missing prints why and is
 * skipped; one that fails prints the error, the others still run, and the exit code is 1.
 * Figures depend on the machine and its load: quote medians, and compare on one machine.
 */
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { formatExportBench, runExportBench } from './export';
import { formatFormatsBench, runFormatsBench } from './formats';
import { normalsSection } from './normals';
import { formatPlanningBench, runPlanningBench } from './planning';
import { rankSection } from './rank';
import { REPO_ROOT, resolveSharedDir, type BenchContext, type BenchSection } from './registry';
import { formatScoringBench, runScoringBench } from './scoring';
import { formatSvdBench, runSvdBench, SVD_BENCH_SHAPES } from './svd';

export * from './registry';
export * from './timing';
export { rankSection } from './rank';
export { normalsSection } from './normals';

const svdSection: BenchSection = {
  name: 'svd',
  title: 'singularValues (TypeScript and WebAssembly SIMD kernels) vs numpy/LAPACK, one thread',
  async run(context) {
    const shapes = context.quick ? SVD_BENCH_SHAPES.map((s) => ({ ...s, runs: Math.max(1, Math.floor(s.runs / 3)) })) : SVD_BENCH_SHAPES;
    context.print(formatSvdBench(await runSvdBench(shapes)));
  },
};

const scoringSection: BenchSection = {
  name: 'scoring',
  title: 'zerolm score on a generated BERT-base-shaped model, fp32 and q8: wall time and peak memory',
  async run(context) {
    context.print(formatScoringBench(runScoringBench({ runs: context.quick ? 1 : 3, log: context.print })));
  },
};

const planningSection: BenchSection = {
  name: 'planning',
  title: 'structured-pruning planner on BERT-base- and LLaMA-shaped spec graphs: time, candidates/s, scores',
  async run(context) {
    context.print(formatPlanningBench(await runPlanningBench({ candidates: context.quick ? 64 : 256, log: context.print })));
  },
};

const exportSection: BenchSection = {
  name: 'export',
  title: 'prune generated BERT-base- and LLaMA-shaped models to 50%: plan and export time, latency ratio vs parameter ratio',
  async run(context) {
    context.print(formatExportBench(await runExportBench({ runs: context.quick ? 5 : 20, log: context.print })));
  },
};

const formatsSection: BenchSection = {
  name: 'formats',
  title: 'prune the generated LLaMA-shaped model from its fp32, q4 and q4f16 files: time and peak memory; q4 latency ratio',
  async run(context) {
    context.print(formatFormatsBench(await runFormatsBench({ runs: context.quick ? 5 : 20, log: context.print })));
  },
};

/**
 * Every section, in the order they run. Add new benchmarks here. (`npm run bench:quality`, which
 * needs trained models, stays a script of its own.)
 */
export const BENCH_SECTIONS: readonly BenchSection[] = [rankSection, normalsSection, svdSection, scoringSection, planningSection, exportSection, formatsSection];

export interface BenchOptions {
  only?: string[];
  quick: boolean;
  dataDir?: string;
}

/** Parses the command line; throws a message for an unknown flag or section name. */
export function parseBenchArgs(argv: readonly string[], sections: readonly BenchSection[] = BENCH_SECTIONS): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    throw new HelpRequested(
      [
        'usage: node tools/dist/bench/index.js [--only NAME[,NAME]] [--quick] [--data-dir DIR]',
        'sections (all run by default, in this order):',
        ...sections.map((s) => `  ${s.name.padEnd(10)}${s.title}`),
      ].join('\n'),
    );
  }
  const options: BenchOptions = { quick: values.quick === true };
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir'];
  if (values.only !== undefined) {
    const names = values.only.split(',').map((n) => n.trim()).filter((n) => n !== '');
    const unknown = names.filter((n) => !sections.some((s) => s.name === n));
    if (names.length === 0 || unknown.length > 0) {
      throw new Error(`--only: unknown section ${unknown.map((n) => `"${n}"`).join(', ') || '(none named)'} (known: ${sections.map((s) => s.name).join(', ')})`);
    }
    options.only = names;
  }
  return options;
}

class HelpRequested extends Error {}

/** Runs the chosen sections, printing as it goes; resolves to the names of the sections that failed. */
export async function runBench(options: BenchOptions, sections: readonly BenchSection[] = BENCH_SECTIONS, out: (line: string) => void = console.log): Promise<string[]> {
  const chosen = options.only ? sections.filter((s) => options.only!.includes(s.name)) : [...sections];
  const context: BenchContext = {
    quick: options.quick,
    sharedDir: resolveSharedDir(options.dataDir),
    repoRoot: REPO_ROOT,
    print: (line = '') => out(line),
  };
  const cpus = os.cpus();
  out(`zerolm benchmarks: node ${process.version}, ${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${options.quick ? ', --quick' : ''}`);
  const failed: string[] = [];
  for (const section of chosen) {
    out('');
    out(`== ${section.name}: ${section.title}`);
    try {
      await section.run(context);
    } catch (error) {
      failed.push(section.name);
      out(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return failed;
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof HelpRequested) {
      console.log(error.message);
      return 0;
    }
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const failed = await runBench(options);
  if (failed.length > 0) console.error(`\nbench: failed sections: ${failed.join(', ')}`);
  return failed.length > 0 ? 1 : 0;
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}
