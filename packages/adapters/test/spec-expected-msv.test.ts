/**
 * Drawn weights and the analytic expected value agree: for every sampled architecture, the sum of
 * msv (||W||_F^2 / min(rows, cols)) over its Attention matrices, and over its FFN matrices,
 * computed from drawn values is within 2% of rows * cols * Var(init) / min(rows, cols) summed.
 *
 * Sub-sampled (every operation kind / model width, then a budget of ~3 * 10^7 drawn entries), to
 * keep this library-level check at a few seconds: every architecture of both benchmarks is checked
 * from the CLI's own output by apps/cli/test/rank-benchmarks.test.ts (~1.9 * 10^9 draws each, in
 * plain Node). `ZEROLM_MSV_FULL=1` checks every architecture here too (minutes).
 */
import { initVariance, listMeasures, Rng, type Matrix, type ModuleGraph, type WeightInit, type WeightMatrix } from '@zerolm/core';
import { flexibertToGraph, loadFlexibertBenchmark, loadLtsBenchmark, ltsToGraph } from '../src';
import { describeShared, sharedPaths } from './shared-data';

const TOLERANCE = 0.02;
const checkAll = process.env['ZEROLM_MSV_FULL'] === '1';

interface MsvMeasure {
  ofMatrix(matrix: Matrix): number;
  expected(rows: number, cols: number, init: WeightInit): number;
}

/** The registered `msv` measure when core has one, else the formula of method.md section 2. */
function msvMeasure(): MsvMeasure {
  const registered = listMeasures().find((m) => m.name === 'msv');
  const local: MsvMeasure = {
    ofMatrix: ({ rows, cols, data }) => {
      let squares = 0;
      for (let i = 0; i < data.length; i++) squares += data[i]! * data[i]!;
      return squares / Math.min(rows, cols);
    },
    expected: (rows, cols, init) => (rows * cols * initVariance(init)) / Math.min(rows, cols),
  };
  if (registered === undefined) return local;
  return {
    ofMatrix: (matrix) => registered.ofMatrix(matrix),
    expected: registered.expected === undefined ? local.expected : (r, c, init) => registered.expected!(r, c, init),
  };
}

function moduleMatrices(graph: ModuleGraph, part: 'attention' | 'ffn'): WeightMatrix[] {
  return graph.layers.flatMap((layer) => layer[part].matrices);
}

function drawnEntries(graph: ModuleGraph): number {
  return [...moduleMatrices(graph, 'attention'), ...moduleMatrices(graph, 'ffn')].reduce((n, m) => n + m.rows * m.cols, 0);
}

/**
 * The architectures to check: for every stratum (operation kind, model width) the smallest
 * architecture that has it, then others in a fixed shuffled order while they fit in `budget`
 * drawn entries. All of them with ZEROLM_MSV_FULL=1.
 */
function stratifiedSample<T>(
  records: T[],
  toGraph: (record: T) => ModuleGraph,
  strataOf: (graph: ModuleGraph) => string[],
  seed: string,
  budget: number,
): ModuleGraph[] {
  const order = new Rng(seed).permutation(records.length).map((i) => toGraph(records[i]!));
  if (checkAll) return order;
  const bySize = [...order].sort((a, b) => drawnEntries(a) - drawnEntries(b));
  const chosen = new Set<ModuleGraph>();
  const strata = [...new Set(order.flatMap(strataOf))].sort();
  for (const stratum of strata) {
    if ([...chosen].some((g) => strataOf(g).includes(stratum))) continue;
    chosen.add(bySize.find((g) => strataOf(g).includes(stratum))!);
  }
  let left = budget - [...chosen].reduce((n, g) => n + drawnEntries(g), 0);
  for (const graph of order) {
    if (chosen.has(graph) || drawnEntries(graph) > left) continue;
    chosen.add(graph);
    left -= drawnEntries(graph);
  }
  return [...chosen];
}

function disagreements(graphs: ModuleGraph[]): string[] {
  const msv = msvMeasure();
  const out: string[] = [];
  for (const graph of graphs) {
    for (const part of ['attention', 'ffn'] as const) {
      let drawn = 0;
      let expected = 0;
      for (const m of moduleMatrices(graph, part)) {
        drawn += msv.ofMatrix({ rows: m.rows, cols: m.cols, data: m.values() });
        expected += msv.expected(m.rows, m.cols, m.init!);
      }
      const relative = Math.abs(drawn - expected) / expected;
      if (!(relative <= TOLERANCE)) out.push(`${graph.name} ${part}: drawn ${drawn}, expected ${expected} (${(100 * relative).toFixed(2)}%)`);
    }
  }
  return out;
}

describeShared(
  'expected-value mode agrees with drawn weights (msv, per architecture and module)',
  () => {
    it('FlexiBERT: Attention and FFN msv sums within 2%, every operation type sampled', () => {
      const records = loadFlexibertBenchmark(sharedPaths.flexibertBenchmark);
      const kinds = (g: ModuleGraph): string[] => g.layers.map((l) => l.attention.kind);
      const graphs = stratifiedSample(records, (r) => flexibertToGraph(r.entry), kinds, 'zerolm/flexibert/msv', 30_000_000);
      expect([...new Set(graphs.flatMap(kinds))].sort()).toEqual(['attention', 'dct', 'dft', 'dsc']);
      expect(graphs.length).toBeGreaterThanOrEqual(checkAll ? records.length : 4);
      expect(disagreements(graphs)).toEqual([]);
    });

    it('LTS GPT-2: Attention and FFN msv sums within 2% (c_proj with its scaled std), every width sampled', () => {
      const records = loadLtsBenchmark(sharedPaths.ltsBenchmark);
      const width = (g: ModuleGraph): string[] => [String(g.hiddenSize)];
      const graphs = stratifiedSample(records, (r) => ltsToGraph(r.entry), width, 'zerolm/lts-gpt2/msv', 30_000_000);
      expect(new Set(graphs.map((g) => g.hiddenSize))).toEqual(new Set([64, 128, 256, 512]));
      expect(disagreements(graphs)).toEqual([]);
    });
  },
  [sharedPaths.flexibertBenchmark, sharedPaths.ltsBenchmark],
);
