/**
 * Benchmark: prune generated BERT-base-shaped and LLaMA-shaped models (real ONNX files) to 50% of
 * their Attention+FFN parameters with `prune` (plan + export), then time the original and the
 * pruned model with onnxruntime at batch 1 and 128 tokens, side by side in the same process.
 * Goal: the pruned/original latency ratio is no worse than the parameter ratio + 0.1, where the
 * parameter ratio counts every parameter the model runs (the LLaMA shape's 32000 x 1024 LM head
 * and embedding are not pruned and cost the same time before and after); the ratio of the
 * Attention+FFN parameters alone is printed beside it.
 */
import { loadHfModel } from '@zerolm/adapters';
import { countParams } from '@zerolm/core';
import { prune } from '@zerolm/planner';
import { latencyBatch, measureLatencies } from '@zerolm/compare';
import { ModelRunner } from '@zerolm/runtime';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { BENCHMARK_SPECS, ensureModel, GENERATED_FIXTURES_DIR } from '@zerolm/test-fixtures';

export interface ExportBenchRow {
  model: string;
  planSeconds: number;
  exportSeconds: number;
  /** Attention+FFN parameters, pruned / original. */
  paramsRatio: number;
  /** All parameters, pruned / original. */
  totalParamsRatio: number;
  originalMs: number;
  prunedMs: number;
  provider: string;
}

const SEQ_LEN = 128;

export async function runExportBench(options: { runs?: number; log?: (line: string) => void } = {}): Promise<ExportBenchRow[]> {
  const runs = options.runs ?? 20;
  const rows: ExportBenchRow[] = [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-export-bench-'));
  try {
    for (const name of ['bert-base', 'llama-1b-shape'] as const) {
      options.log?.(`  generating ${name} (cached after the first run)...`);
      const source = ensureModel(BENCHMARK_SPECS[name], path.join(GENERATED_FIXTURES_DIR, 'bench', name));
      const out = path.join(work, name);
      const started = performance.now();
      const result = await prune(source, { targetParams: 0.5, out });
      const seconds = (performance.now() - started) / 1000;
      const planSeconds = result.plan.timings.totalMs / 1000;
      const models = [loadHfModel(source), loadHfModel(out)];
      const total = (g: (typeof models)[number]['graph']) => countParams(g).total!;
      const runners = [await ModelRunner.open(models[0]!, 'auto'), await ModelRunner.open(models[1]!, 'auto')];
      try {
        const batch = latencyBatch(Int32Array.from({ length: SEQ_LEN }, (_, i) => 5 + (i % 100)), 1, SEQ_LEN);
        const [original, pruned] = await measureLatencies(runners.map((r) => () => r.run(batch)), runs, 3);
        rows.push({
          model: name,
          planSeconds,
          exportSeconds: seconds - planSeconds,
          paramsRatio: result.plan.params.after / result.plan.params.before,
          totalParamsRatio: total(models[1]!.graph) / total(models[0]!.graph),
          originalMs: original!.medianMs,
          prunedMs: pruned!.medianMs,
          provider: runners[0]!.provider,
        });
      } finally {
        for (const r of runners) await r.release();
      }
      fs.rmSync(out, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

export function formatExportBench(rows: readonly ExportBenchRow[]): string {
  const lines = [`prune to 50% of Attention+FFN parameters (default settings), then onnxruntime latency at batch 1 x ${SEQ_LEN} tokens (median, same process):`];
  for (const r of rows) {
    const latencyRatio = r.prunedMs / r.originalMs;
    const goal = latencyRatio <= r.totalParamsRatio + 0.1 ? 'met' : 'NOT met';
    lines.push(
      `  ${r.model.padEnd(15)} plan ${r.planSeconds.toFixed(1)} s (goal < 60 s: ${r.planSeconds < 60 ? 'met' : 'NOT met'}), export ${r.exportSeconds.toFixed(1)} s;` +
        ` params ratio ${r.totalParamsRatio.toFixed(3)} (Attention+FFN ${r.paramsRatio.toFixed(3)}), latency ${r.originalMs.toFixed(1)} -> ${r.prunedMs.toFixed(1)} ms on ${r.provider},` +
        ` ratio ${latencyRatio.toFixed(3)} (goal <= params ratio + 0.1: ${goal})`,
    );
  }
  return lines.join('\n');
}
