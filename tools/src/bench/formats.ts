/**
 * Benchmark: `zerolm prune` to 50% on the generated LLaMA-shaped model (16 x 1024, GQA 16/4,
 * FFN 2816, vocabulary 32000) in each weight format people run decoders in: a folder holding
 * only the fp32, only the q4, or only the q4f16 file, each pruned as a whole process (default
 * settings: planned, calibrated and corrected on that file), with wall time and peak resident
 * memory. Then onnxruntime latency of the pruned q4 file against the unpruned q4 file (and the
 * same for fp32), batch 1 x 128 tokens, side by side in one process. Goal: the latency ratio
 * within 0.1 of the parameter ratio, counting every parameter the model runs, as for fp32.
 */
import { DTYPE_FILES, loadHfModel, type ModelDtype } from '@zerolm/adapters';
import { latencyBatch, measureLatencies } from '@zerolm/compare';
import { countParams } from '@zerolm/core';
import { ModelRunner } from '@zerolm/runtime';
import { BENCHMARK_SPECS, ensureModel, GENERATED_FIXTURES_DIR } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runCliMeasured } from './timing';

const SEQ_LEN = 128;
const FORMATS = ['fp32', 'q4', 'q4f16'] as const;

export interface FormatPruneRow {
  dtype: ModelDtype;
  fileMb: number;
  seconds: number;
  peakMb: number;
}

export interface FormatLatencyRow {
  dtype: ModelDtype;
  totalParamsRatio: number;
  originalMs: number;
  prunedMs: number;
  provider: string;
}

/**
 * A folder holding the model's config and tokenizer and only its `dtype` file, with that file's
 * external data when it has some (hard links, no copies).
 */
export function singleFormatFolder(source: string, dtype: ModelDtype, target: string): string {
  fs.mkdirSync(path.join(target, 'onnx'), { recursive: true });
  for (const file of fs.readdirSync(source)) {
    if (file === 'onnx') continue;
    fs.linkSync(path.join(source, file), path.join(target, file));
  }
  const name = DTYPE_FILES[dtype];
  for (const file of fs.readdirSync(path.join(source, 'onnx'))) {
    if (file === name || file.startsWith(`${name}_data`)) fs.linkSync(path.join(source, 'onnx', file), path.join(target, 'onnx', file));
  }
  return target;
}

/** `zerolm prune` in a child process that reports its own peak memory on exit. */
function timedPrune(dir: string, out: string): { seconds: number; peakMb: number } {
  const run = runCliMeasured(['prune', dir, '--out', out, '--target-params', '0.5', '--json'], `zerolm prune ${dir}`);
  return { seconds: run.seconds, peakMb: run.peakBytes / 2 ** 20 };
}

export async function runFormatsBench(options: { runs?: number; log?: (line: string) => void } = {}): Promise<{ prune: FormatPruneRow[]; latency: FormatLatencyRow[] }> {
  const runs = options.runs ?? 20;
  options.log?.('  generating llama-1b-shape with q4 and q4f16 files (cached after the first run)...');
  const source = ensureModel({ ...BENCHMARK_SPECS['llama-1b-shape'], variants: ['q4', 'q4f16'] }, path.join(GENERATED_FIXTURES_DIR, 'bench', 'llama-1b-shape-formats'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-formats-bench-'));
  const prune: FormatPruneRow[] = [];
  const latency: FormatLatencyRow[] = [];
  try {
    for (const dtype of FORMATS) {
      const dir = singleFormatFolder(source, dtype, path.join(work, `${dtype}-only`));
      const out = path.join(work, `${dtype}-p50`);
      const timing = timedPrune(dir, out);
      prune.push({ dtype, fileMb: fs.statSync(path.join(dir, 'onnx', DTYPE_FILES[dtype])).size / 2 ** 20, ...timing });
      options.log?.(`  pruned the ${dtype} file in ${timing.seconds.toFixed(0)} s`);
    }
    for (const dtype of ['fp32', 'q4'] as const) {
      const models = [loadHfModel(path.join(work, `${dtype}-only`), { dtype }), loadHfModel(path.join(work, `${dtype}-p50`), { dtype })];
      const total = (i: number) => countParams(models[i]!.graph).total!;
      const runners = [await ModelRunner.open(models[0]!, 'auto'), await ModelRunner.open(models[1]!, 'auto')];
      try {
        const batch = latencyBatch(Int32Array.from({ length: SEQ_LEN }, (_, i) => 5 + (i % 100)), 1, SEQ_LEN);
        const [original, pruned] = await measureLatencies(runners.map((r) => () => r.run(batch)), runs, 3);
        latency.push({ dtype, totalParamsRatio: total(1) / total(0), originalMs: original!.medianMs, prunedMs: pruned!.medianMs, provider: runners[0]!.provider });
      } finally {
        for (const r of runners) await r.release();
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { prune, latency };
}

export function formatFormatsBench(result: { prune: FormatPruneRow[]; latency: FormatLatencyRow[] }): string {
  const lines = ['zerolm prune --target-params 0.5 on llama-1b-shape (generated), a folder holding only one weight file, whole process:'];
  for (const r of result.prune) {
    lines.push(`  ${r.dtype.padEnd(5)}  file ${r.fileMb.toFixed(0).padStart(4)} MB  prune ${r.seconds.toFixed(0)} s  peak ${r.peakMb.toFixed(0)} MB (${(r.peakMb / r.fileMb).toFixed(2)}x file)`);
  }
  lines.push(`onnxruntime latency, pruned vs unpruned file, batch 1 x ${SEQ_LEN} tokens (median, same process):`);
  for (const r of result.latency) {
    const ratio = r.prunedMs / r.originalMs;
    const goal = Math.abs(ratio - r.totalParamsRatio) <= 0.1 ? 'met' : 'NOT met';
    lines.push(
      `  ${r.dtype.padEnd(5)}  ${r.originalMs.toFixed(1)} -> ${r.prunedMs.toFixed(1)} ms on ${r.provider}, ratio ${ratio.toFixed(3)}, params ratio ${r.totalParamsRatio.toFixed(3)} (goal: within 0.1: ${goal})`,
    );
  }
  return lines.join('\n');
}
