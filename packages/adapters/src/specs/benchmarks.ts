/**
 * The benchmarks by name, loaded straight into what ranking needs: one graph per architecture
 * and a ground truth oriented so that higher is better.
 */
import type { ModuleGraph } from '@zerolm/core';
import { flexibertToGraph } from './flexibert';
import { loadFlexibertBaselines, loadFlexibertBenchmark, loadLtsBenchmark } from './loaders';
import { ltsToGraph } from './lts';

export interface BenchmarkInfo {
  readonly title: string;
  /** What the file's ground truth is. */
  readonly groundTruth: string;
  /** Whether a higher reported value is better; when not, entries carry its negation. */
  readonly higherIsBetter: boolean;
}

export const BENCHMARKS = {
  flexibert: { title: 'FlexiBERT / NAS-Bench-BERT', groundTruth: 'average GLUE', higherIsBetter: true },
  'lts-gpt2': { title: 'LTS GPT-2 on WikiText-103', groundTruth: 'validation perplexity', higherIsBetter: false },
} as const satisfies Record<string, BenchmarkInfo>;

export type BenchmarkName = keyof typeof BENCHMARKS;

export interface BenchmarkArchitecture {
  readonly id: string;
  readonly graph: ModuleGraph;
  /** Higher is better: the GLUE score, or the negated perplexity. */
  readonly groundTruth: number;
  /** The ground truth as the file reports it (perplexity stays positive here). */
  readonly reported: number;
}

export interface LoadedBenchmark {
  readonly name: BenchmarkName;
  readonly info: BenchmarkInfo;
  /** What `entries[].groundTruth` holds, for axis labels and reports. */
  readonly groundTruthLabel: string;
  readonly entries: BenchmarkArchitecture[];
}

export interface LoadBenchmarkOptions {
  /** Extra seed text for the drawn weights (see the spec adapters). */
  readonly seed?: string;
}

/** Loads a benchmark file by benchmark name; every architecture's graph is built (weights stay lazy). */
export function loadBenchmark(name: string, path: string, options: LoadBenchmarkOptions = {}): LoadedBenchmark {
  const seed = options.seed === undefined ? {} : { seed: options.seed };
  switch (name) {
    case 'flexibert':
      return {
        name,
        info: BENCHMARKS[name],
        groundTruthLabel: 'average GLUE',
        entries: loadFlexibertBenchmark(path).map((r) => ({
          id: r.id,
          graph: flexibertToGraph(r.entry, seed),
          groundTruth: r.glue,
          reported: r.glue,
        })),
      };
    case 'lts-gpt2':
      return {
        name,
        info: BENCHMARKS[name],
        groundTruthLabel: 'negated validation perplexity',
        entries: loadLtsBenchmark(path).map((r) => ({
          id: r.id,
          graph: ltsToGraph(r.entry, seed),
          groundTruth: -r.validPpl,
          reported: r.validPpl,
        })),
      };
    default:
      throw new Error(`unknown benchmark "${name}" (known: ${Object.keys(BENCHMARKS).join(', ')})`);
  }
}

/** Columns of a baseline CSV that are ground truth, never a proxy to compare against. */
const GROUND_TRUTH_COLUMNS = ['GLUE Score'];

/**
 * Reads a baseline-proxy CSV (FlexiBERT: `baseline_proxies.public.csv`) as one array per proxy
 * column, aligned with `ids`. Values are as published; the publications correlate each of them
 * directly with the ground truth (higher = better). The ground-truth column is left out.
 */
export function loadBaselineCsv(path: string, ids: readonly string[]): Record<string, Float64Array> {
  const table = loadFlexibertBaselines(path);
  const missing = ids.filter((id) => !table.byId.has(id));
  if (missing.length > 0) {
    throw new Error(
      `baseline CSV "${path}" has no row for ${missing.length} of ${ids.length} architectures (first: ${missing.slice(0, 5).join(', ')})`,
    );
  }
  const columns: Record<string, Float64Array> = {};
  for (const column of table.columns) {
    if (GROUND_TRUTH_COLUMNS.includes(column)) continue;
    columns[column] = Float64Array.from(ids, (id) => table.byId.get(id)![column]!);
  }
  return columns;
}
