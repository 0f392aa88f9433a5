/**
 * Benchmark of the structured-pruning planner on spec graphs (no ONNX files needed):
 * a BERT-base-shaped encoder (12 layers, hidden 768, 12 heads, FFN 3072) and a LLaMA-shaped
 * decoder (16 layers, hidden 1024, GQA 16/4 heads of 64, gated FFN 2816).
 *
 *   npx tsc -b tools && node tools/dist/bench/planning.js
 *
 * Per model: planning time at 50% parameters with the default evaluations (goal: under 60 s on
 * the 2-core machine) and where it goes; masked candidates scored per second by each provider
 * available (onnxruntime, TypeScript float64), and by the search itself (table lookups plus
 * repair and refill); the evolutionary, greedy and uniform-width scores at the same budget.
 */
import { specToGraph } from '@zerolm/adapters';
import { Rng, type ModuleGraph } from '@zerolm/core';
import { maskLayout, openOnnxMaskScorer, planPrune, scoreMasksTs, writeCountsMask, type LayerCounts, type UnitRanking } from '@zerolm/planner';
import { performance } from 'node:perf_hooks';
import { BENCHMARK_SPECS } from '@zerolm/test-fixtures';

export interface PlanningBenchRow {
  model: string;
  metric: string;
  value: number;
  unit: string;
  note?: string;
}

/** The benchmark shapes as zerolm-spec graphs (weights N(0, 0.02^2), drawn per matrix). */
export function planningBenchGraphs(): { name: string; graph: ModuleGraph }[] {
  const bert = BENCHMARK_SPECS['bert-base'];
  const llama = BENCHMARK_SPECS['llama-1b-shape'];
  return [
    {
      name: 'bert-base-shape',
      graph: specToGraph({
        format: 'zerolm-spec',
        name: 'bert-base-shape',
        hiddenSize: bert.hidden,
        bias: true,
        layers: [{ heads: bert.heads, headDim: bert.hidden / bert.heads, ffnWidth: bert.ffn, repeat: bert.layers }],
      }),
    },
    {
      name: 'llama-shape',
      graph: specToGraph({
        format: 'zerolm-spec',
        name: 'llama-shape',
        hiddenSize: llama.hidden,
        layers: [{ heads: llama.heads, kvHeads: llama.kvHeads, headDim: llama.headDim, ffnWidth: llama.ffn, gated: true, repeat: llama.layers }],
      }),
    },
  ];
}

function randomCounts(graph: ModuleGraph, rng: Rng, roundTo: number): LayerCounts[] {
  return graph.layers.map((layer) => ({
    groups: 1 + rng.int(layer.attention.kvHeads),
    neurons: Math.min(layer.ffn.width, roundTo * (1 + rng.int(Math.ceil(layer.ffn.width / roundTo)))),
    dropped: false,
  }));
}

/** Candidates per second of the mask scorers on `count` random candidates, in batches of `batch`. */
async function scorerRates(graph: ModuleGraph, ranking: UnitRanking, count: number, batch: number): Promise<PlanningBenchRow[]> {
  const layout = maskLayout(graph);
  const rng = new Rng('planning-bench');
  const masks = new Float32Array(count * layout.units);
  for (let row = 0; row < count; row++) writeCountsMask(layout, ranking, randomCounts(graph, rng, 8), masks, row);
  const rows: PlanningBenchRow[] = [];
  const model = graph.name;
  try {
    const scorer = await openOnnxMaskScorer(layout, { alpha: 0.5 });
    await scorer.score(masks, batch); // warm-up
    const started = performance.now();
    for (let first = 0; first < count; first += batch) {
      await scorer.score(masks.subarray(first * layout.units), Math.min(batch, count - first));
    }
    const seconds = (performance.now() - started) / 1000;
    await scorer.close();
    rows.push({ model, metric: `masked candidates scored/s, onnxruntime ${scorer.provider}`, value: count / seconds, unit: '1/s', note: `batches of ${batch}, ${layout.units} units` });
  } catch (error) {
    rows.push({ model, metric: 'masked candidates scored/s, onnxruntime', value: NaN, unit: '1/s', note: `unavailable: ${error instanceof Error ? error.message : String(error)}` });
  }
  const started = performance.now();
  for (let first = 0; first < count; first += batch) scoreMasksTs(layout, masks.subarray(first * layout.units), Math.min(batch, count - first), 0.5);
  const seconds = (performance.now() - started) / 1000;
  rows.push({ model, metric: 'masked candidates scored/s, typescript', value: count / seconds, unit: '1/s', note: 'float64 reference' });
  return rows;
}

export async function runPlanningBench(options: { log?: (line: string) => void; candidates?: number } = {}): Promise<PlanningBenchRow[]> {
  const rows: PlanningBenchRow[] = [];
  for (const { name, graph } of planningBenchGraphs()) {
    options.log?.(`planning ${name} at 50% parameters...`);
    const result = await planPrune(graph, { targetParams: 0.5 });
    const t = result.timings;
    const add = (metric: string, value: number, unit: string, note?: string) => rows.push({ model: name, metric, value, unit, ...(note ? { note } : {}) });
    add('planning time, 50% params, default evals', t.totalMs / 1000, 's', `provider ${result.provider}${result.providerReason ? ` (${result.providerReason})` : ''}`);
    add('  ranking (weights drawn, unit norms)', t.rankingMs / 1000, 's');
    add('  capacity table', t.scoringMs / 1000, 's', `${result.scoredRows} masked sub-networks scored`);
    add('  greedy', t.greedyMs / 1000, 's', `${result.greedy.evaluations} step candidates`);
    add('  evolution', t.evolutionMs / 1000, 's', `${result.evaluations} candidates, ${result.search.generations} generations`);
    add('search candidates/s (with repair and refill)', result.evaluations / (t.evolutionMs / 1000), '1/s');
    add('score, evolutionary', result.score.after, '', `params ${result.params.after} / budget ${Math.floor(result.params.budget!)}`);
    add('score, greedy', result.greedy.score, '', `params ${result.greedy.params}`);
    if (result.uniform) add('score, uniform width', result.uniform.score, '', `params ${result.uniform.params}`);
    add('score, full model', result.score.before, '');
    const ts = await planPrune(graph, { targetParams: 0.5, backend: 'typescript' });
    add('planning time, typescript backend', ts.timings.totalMs / 1000, 's', `table ${(ts.timings.scoringMs / 1000).toFixed(3)} s; same plan: ${JSON.stringify(ts.plan) === JSON.stringify(result.plan)}`);
    rows.push(...(await scorerRates(graph, result.ranking, options.candidates ?? 256, 64)));
  }
  return rows;
}

export function formatPlanningBench(rows: readonly PlanningBenchRow[]): string {
  const format = (v: number) => (Number.isNaN(v) ? 'n/a' : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(4));
  const lines = [`${'model'.padEnd(16)}${'metric'.padEnd(46)}${'value'.padStart(12)}  unit  note`];
  for (const r of rows) lines.push(`${r.model.padEnd(16)}${r.metric.padEnd(46)}${format(r.value).padStart(12)}  ${r.unit.padEnd(4)}  ${r.note ?? ''}`);
  return lines.join('\n');
}

if (require.main === module) {
  runPlanningBench({ log: (line) => console.error(line) }).then(
    (rows) => console.log(formatPlanningBench(rows)),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
