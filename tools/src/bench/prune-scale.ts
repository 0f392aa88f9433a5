/**
 * Benchmark: `zerolm prune --target-params 0.5` on generated models of real checkpoints' shapes,
 * each as a whole process (start-up, plan, correction and export): wall time, peak resident
 * memory, and where the time went (plan.json's `timings`).
 *
 * - Qwen2.5-0.5B (24 x 896, 14/2 heads, FFN 4864, vocabulary 151,936, tied embeddings; 2.5 GB in
 *   fp32, external data): goal under 5 minutes, peak under 1.5 x the weights + 1 GiB.
 * - TinyLlama-1.1B (22 x 2048, 32/4 heads, FFN 5632, vocabulary 32,000; 4.4 GB): goal under 15
 *   minutes, the same memory goal; and the same model from a folder holding only its q4f16 file
 *   (0.8 GB): goal under 15 minutes and 3 GiB.
 * - Growth with depth: the Qwen2.5-0.5B width with a 32,000 vocabulary at 12 and 24 layers, side
 *   by side; goal: time and memory grow no faster than the layers (ratio at most 2). Each depth
 *   runs twice, alternately, and the faster run of each is compared: a single pair sits within
 *   this machine's spread between runs of the x2 line.
 * - GPU: the layer-wise calibration and ranking (`--plan-only`) of the 12-layer model on the CPU
 *   and on CUDA in the same run, when the CUDA provider starts; otherwise the line says why not.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { OrtAlgebra, type PruneTimings } from '@zerolm/planner';
import type { ModelDtype } from '@zerolm/adapters';
import { BENCHMARK_SPECS, ensureModel, GENERATED_FIXTURES_DIR, type ModelSpec } from '@zerolm/test-fixtures';
import { singleFormatFolder } from './formats';
import { runCliMeasured } from './timing';

export interface PruneScaleRow {
  name: string;
  layers: number;
  /** Bytes of the fp32 weights read (model.onnx and its external data). */
  weightBytes: number;
  /** Wall time of the whole process, seconds. */
  seconds: number;
  /** CPU time of the whole process (user + system, all threads), seconds: with the wall time, how much of the machine it had. */
  cpuSeconds: number;
  /** The machine's 1-minute load average when the run ended (other work slows it down). */
  loadAverage: number;
  peakBytes: number;
  /** plan.json's phase timings (milliseconds), as the child prints them with --json. */
  timings: PruneTimings;
  /** How FFN neurons and attention units were ranked, in plan.json's words. */
  rules: string;
}

/** Bytes of the ONNX files (and their external data) in a folder. */
function weightBytes(dir: string): number {
  const onnx = path.join(dir, 'onnx');
  return fs.readdirSync(onnx).reduce((sum, f) => sum + fs.statSync(path.join(onnx, f)).size, 0);
}

/** Runs `zerolm prune` in a child process that reports its own peak memory on exit. */
function timedPrune(dir: string, out: string, extra: readonly string[] = []): { seconds: number; cpuSeconds: number; peakBytes: number; plan: Record<string, unknown> } {
  const run = runCliMeasured(['prune', dir, '--out', out, '--target-params', '0.5', '--force', '--json', ...extra], `zerolm prune ${dir}`);
  return { seconds: run.seconds, cpuSeconds: run.cpuSeconds, peakBytes: run.peakBytes, plan: JSON.parse(run.stdout) };
}

function rulesOf(plan: Record<string, unknown>): string {
  const importance = plan['importance'] as { attention?: { method: string }; ffn?: { method: string; chunk?: number; steps?: number }[] };
  const ffn = [...new Set((importance.ffn ?? []).map((f) => (f.method === 'chunked-obs' ? `OBS in ${f.steps} steps of ${f.chunk}` : f.method)))].join(' / ');
  return `attention ${importance.attention?.method ?? '-'}, FFN ${ffn || '-'}`;
}

/**
 * Generates `spec` into the bench folder `folder` (cached) and prunes `name`: a folder holding
 * only its `dtype` file (hard links), as a whole process.
 */
function measure(name: string, spec: ModelSpec, work: string, log?: (line: string) => void, folder = name, dtype: ModelDtype = 'fp32'): PruneScaleRow {
  log?.(`  generating ${folder} (cached after the first run)...`);
  const source = ensureModel(spec, path.join(GENERATED_FIXTURES_DIR, 'bench', folder));
  const dir = singleFormatFolder(source, dtype, path.join(work, `${name}-source`));
  log?.(`  pruning ${name}...`);
  const out = path.join(work, name);
  try {
    const run = timedPrune(dir, out);
    const row: PruneScaleRow = {
      name,
      layers: spec.layers,
      weightBytes: weightBytes(dir),
      seconds: run.seconds,
      cpuSeconds: run.cpuSeconds,
      loadAverage: os.loadavg()[0]!,
      peakBytes: run.peakBytes,
      timings: run.plan['timings'] as PruneTimings,
      rules: rulesOf(run.plan),
    };
    log?.(formatRow(row).join('\n'));
    return row;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The Qwen2.5-0.5B width with a 32,000 vocabulary (one file) at `layers` layers. */
export function depthSpec(layers: number): ModelSpec {
  return { ...BENCHMARK_SPECS['qwen2.5-0.5b'], vocab: 32000, layers };
}

export interface GpuLine {
  skipped?: string;
  cpuSeconds?: number;
  cudaSeconds?: number;
}

export interface PruneScaleResult {
  rows: PruneScaleRow[];
  /** Every run of the 12-layer and the 24-layer model, in the order they ran. */
  depth: { shallow: PruneScaleRow[]; deep: PruneScaleRow[] } | undefined;
  gpu: GpuLine;
}

/** Runs of each depth (alternately). */
const DEPTH_RUNS = 2;

function fastest(rows: readonly PruneScaleRow[]): PruneScaleRow {
  return rows.reduce((best, r) => (r.seconds < best.seconds ? r : best));
}

/** Why the CUDA provider does not start here (undefined when it does). */
async function cudaStarts(): Promise<string | undefined> {
  try {
    await (await OrtAlgebra.open('cuda')).release();
    return undefined;
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
}

export async function runPruneScaleBench(options: { quick?: boolean; log?: (line: string) => void } = {}): Promise<PruneScaleResult> {
  // Beside the generated models: the single-format folders are hard links to them.
  fs.mkdirSync(path.join(GENERATED_FIXTURES_DIR, 'bench'), { recursive: true });
  const work = fs.mkdtempSync(path.join(GENERATED_FIXTURES_DIR, 'bench', '.prune-scale-'));
  try {
    const rows: PruneScaleRow[] = [];
    if (!options.quick) {
      rows.push(measure('qwen2.5-0.5b', BENCHMARK_SPECS['qwen2.5-0.5b'], work, options.log));
      // One generation (fp32 with its q4f16 file) serves the fp32 row and the q4f16-only row.
      const tinyllama = { ...BENCHMARK_SPECS['tinyllama-1.1b'], variants: ['q4f16'] } satisfies ModelSpec;
      rows.push(measure('tinyllama-1.1b', tinyllama, work, options.log));
      rows.push(measure('tinyllama-1.1b-q4f16', tinyllama, work, options.log, 'tinyllama-1.1b', 'q4f16'));
    }
    const shallowRuns: PruneScaleRow[] = [];
    const deepRuns: PruneScaleRow[] = [];
    for (let run = 0; run < (options.quick ? 1 : DEPTH_RUNS); run++) {
      shallowRuns.push(measure('qwen2.5-0.5b-32k-12l', depthSpec(12), work, options.log));
      if (!options.quick) deepRuns.push(measure('qwen2.5-0.5b-32k-24l', depthSpec(24), work, options.log));
    }
    const shallow = shallowRuns[0]!;
    if (options.quick) rows.push(shallow);
    let gpu: GpuLine;
    const why = await cudaStarts();
    if (why !== undefined) {
      gpu = { skipped: `CUDA unavailable (${why})` };
    } else {
      const dir = path.join(GENERATED_FIXTURES_DIR, 'bench', shallow.name);
      options.log?.('  planning the 12-layer model on cpu and on cuda...');
      const cpu = timedPrune(dir, path.join(work, 'cpu'), ['--plan-only', '--device', 'cpu']);
      const cuda = timedPrune(dir, path.join(work, 'cuda'), ['--plan-only', '--device', 'cuda']);
      fs.rmSync(path.join(work, 'cpu'), { recursive: true, force: true });
      gpu = { cpuSeconds: cpu.seconds, cudaSeconds: cuda.seconds };
    }
    return { rows, depth: options.quick ? undefined : { shallow: shallowRuns, deep: deepRuns }, gpu };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const GiB = 2 ** 30;

function phases(t: PruneTimings): string {
  const s = (ms: number | undefined) => ((ms ?? 0) / 1000).toFixed(1);
  return `calibration ${s(t.calibrationMs)} s (sequences ${s(t.sequencesMs)}, statistics ${s(t.statisticsMs)}), importance ${s(t.importanceMs)} s, search ${s(t.searchMs)} s, correction ${s(t.correctionMs)} s, export ${s(t.exportMs)} s`;
}

/** Goals per row: seconds, and peak memory as a function of the weights' bytes. */
const GOALS: Record<string, { seconds: number; memory: (weights: number) => number; memoryText: string }> = {
  'qwen2.5-0.5b': { seconds: 300, memory: (w) => 1.5 * w + GiB, memoryText: '1.5x + 1 GiB' },
  'tinyllama-1.1b': { seconds: 900, memory: (w) => 1.5 * w + GiB, memoryText: '1.5x + 1 GiB' },
  'tinyllama-1.1b-q4f16': { seconds: 900, memory: () => 3 * GiB, memoryText: '3 GiB' },
};

/** One shape's two lines: time and memory (against the goals of the goal shapes), then the phases. */
function formatRow(r: PruneScaleRow): string[] {
  const goal = GOALS[r.name];
  const memoryLimit = goal?.memory(r.weightBytes);
  return [
    `  ${r.name.padEnd(22)} weights ${(r.weightBytes / GiB).toFixed(2)} GiB  time ${r.seconds.toFixed(0)} s (cpu ${r.cpuSeconds.toFixed(0)} s)` +
      (goal ? ` (goal < ${goal.seconds / 60} min: ${r.seconds < goal.seconds ? 'met' : 'NOT met'})` : '') +
      `  peak ${(r.peakBytes / GiB).toFixed(2)} GiB = ${(r.peakBytes / r.weightBytes).toFixed(2)}x weights` +
      (goal ? ` (goal < ${goal.memoryText} = ${(memoryLimit! / GiB).toFixed(2)} GiB: ${r.peakBytes < memoryLimit! ? 'met' : 'NOT met'})` : ''),
    `    ${phases(r.timings)}; ${r.rules}; load average ${r.loadAverage.toFixed(1)} at the end`,
  ];
}

export function formatPruneScaleBench(result: PruneScaleResult): string {
  const lines = ['zerolm prune --target-params 0.5, whole process (plan + correction + export), wall and CPU time, peak RSS:'];
  for (const r of result.rows) lines.push(...formatRow(r));
  if (result.depth) {
    const { shallow, deep } = result.depth;
    const [a, b] = [fastest(shallow), fastest(deep)];
    const timeRatio = b.seconds / a.seconds;
    const memoryRatio = b.peakBytes / a.peakBytes;
    const runs = shallow.flatMap((r, i) => [r, deep[i]].filter((x): x is PruneScaleRow => x !== undefined));
    lines.push(
      `growth with depth (the Qwen2.5-0.5B width, vocabulary 32,000; each depth run ${shallow.length} times, alternately):`,
      `  layers  weights    time (cpu)       peak      phases`,
      ...runs.map(
        (r) => `  ${String(r.layers).padStart(6)}  ${(r.weightBytes / GiB).toFixed(2)} GiB  ${r.seconds.toFixed(0).padStart(5)} s (${r.cpuSeconds.toFixed(0).padStart(5)} s)  ${(r.peakBytes / GiB).toFixed(2)} GiB  ${phases(r.timings)}`,
      ),
      `  24 / 12 layers, the faster run of each (${b.seconds.toFixed(0)} s / ${a.seconds.toFixed(0)} s): time x${timeRatio.toFixed(2)}, peak memory x${memoryRatio.toFixed(2)} (goal: no faster than linear, at most x2: ${timeRatio <= 2 && memoryRatio <= 2 ? 'met' : 'NOT met'})`,
    );
  }
  lines.push(
    result.gpu.skipped !== undefined
      ? `GPU (layer-wise calibration and ranking, --plan-only, CPU vs CUDA in one run): skipped, ${result.gpu.skipped}`
      : `GPU (layer-wise calibration and ranking, --plan-only, 12 layers): cpu ${result.gpu.cpuSeconds!.toFixed(1)} s, cuda ${result.gpu.cudaSeconds!.toFixed(1)} s, cpu/cuda ${(result.gpu.cpuSeconds! / result.gpu.cudaSeconds!).toFixed(2)}x`,
  );
  return lines.join('\n');
}
