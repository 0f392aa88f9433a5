/**
 * Benchmark: `zerolm score` on a generated BERT-base-shaped model (12 layers, hidden 768, FFN
 * 3072), fp32 and q8, as whole processes: wall time and peak resident memory against the size of
 * the ONNX file read. Goals: under 2 s with `msv`, peak memory under 2x the file size.
 */
import { statSync } from 'fs';
import * as path from 'path';
import { BENCHMARK_SPECS, ensureModel, GENERATED_FIXTURES_DIR } from '@zerolm/test-fixtures';
import { runCliMeasured } from './timing';

export interface ScoringRow {
  model: string;
  dtype: 'fp32' | 'q8';
  fileMb: number;
  /** Median wall time of the whole process, seconds. */
  seconds: number;
  /** Largest peak resident set size over the runs, MB. */
  peakMb: number;
}

/** Runs `zerolm score` in a child process that reports its own peak memory on exit. */
function timedScore(dir: string, dtype: string): { seconds: number; peakMb: number } {
  const run = runCliMeasured(['score', dir, '--dtype', dtype, '--json'], `zerolm score ${dtype}`);
  return { seconds: run.seconds, peakMb: run.peakBytes / 2 ** 20 };
}

export function runScoringBench(options: { runs?: number; log?: (line: string) => void } = {}): ScoringRow[] {
  const runs = options.runs ?? 3;
  const dir = ensureModel({ ...BENCHMARK_SPECS['bert-base'], variants: ['q8'] }, path.join(GENERATED_FIXTURES_DIR, 'bench', 'bert-base'));
  const rows: ScoringRow[] = [];
  for (const dtype of ['fp32', 'q8'] as const) {
    const file = path.join(dir, 'onnx', dtype === 'fp32' ? 'model.onnx' : 'model_quantized.onnx');
    const times: number[] = [];
    let peakMb = 0;
    for (let i = 0; i < runs; i++) {
      const { seconds, peakMb: peak } = timedScore(dir, dtype);
      times.push(seconds);
      peakMb = Math.max(peakMb, peak);
    }
    times.sort((a, b) => a - b);
    rows.push({ model: 'bert-base (generated)', dtype, fileMb: statSync(file).size / 2 ** 20, seconds: times[Math.floor(times.length / 2)]!, peakMb });
    options.log?.(`  scored ${dtype} ${runs}x`);
  }
  return rows;
}

export function formatScoringBench(rows: readonly ScoringRow[]): string {
  const lines = ['zerolm score, msv, whole process (median time, peak RSS over the runs):'];
  for (const r of rows) {
    const timeGoal = r.seconds < 2 ? 'met' : 'NOT met';
    const memoryGoal = r.peakMb < 2 * r.fileMb ? 'met' : 'NOT met';
    lines.push(
      `  ${r.model} ${r.dtype.padEnd(4)}  file ${r.fileMb.toFixed(0)} MB  time ${r.seconds.toFixed(2)} s (goal < 2 s: ${timeGoal})` +
        `  peak ${r.peakMb.toFixed(0)} MB = ${(r.peakMb / r.fileMb).toFixed(2)}x file (goal < 2x: ${memoryGoal})`,
    );
  }
  return lines.join('\n');
}
