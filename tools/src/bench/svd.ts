/**
 * Benchmark of `singularValues` (pure TypeScript) against numpy/LAPACK
 * (`numpy.linalg.svd(a, compute_uv=False)`, i.e. dgesdd without vectors) on one thread.
 *
 *   npx tsc -b tools && node tools/dist/bench/svd.js
 *
 * Both sides time Gaussian matrices of the same shapes in the same run: a warm-up call, then the
 * median of a few timed calls. numpy is run by spawning python3 with OMP/OpenBLAS/MKL limited to
 * one thread; without numpy the reference column says so.
 */
import { execFile, spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { drawMatrix, singularValues } from '@zerolm/core';

export interface SvdBenchShape {
  readonly rows: number;
  readonly cols: number;
  /** Timed calls after the warm-up; the median is reported. */
  readonly runs: number;
}

export interface SvdBenchRow extends SvdBenchShape {
  /** Median milliseconds per matrix of `singularValues`. */
  readonly ms: number;
  /** Median milliseconds per matrix of numpy/LAPACK, or null when numpy is unavailable. */
  readonly lapackMs: number | null;
  /** ms / lapackMs (how many times slower than LAPACK), or null. */
  readonly ratio: number | null;
}

export interface SvdBenchResult {
  readonly rows: SvdBenchRow[];
  /** Why there is no LAPACK column, when there is none. */
  readonly lapackUnavailable?: string;
}

export const SVD_BENCH_SHAPES: readonly SvdBenchShape[] = [
  { rows: 256, cols: 256, runs: 9 },
  { rows: 1024, cols: 256, runs: 7 },
  { rows: 1024, cols: 1024, runs: 3 },
  { rows: 3072, cols: 768, runs: 3 },
];

const ONE_THREAD = { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function timeSingularValues(shape: SvdBenchShape): number {
  const data = drawMatrix({ kind: 'normal', std: 1 }, shape.rows, shape.cols, `bench ${shape.rows}x${shape.cols}`);
  const matrix = { rows: shape.rows, cols: shape.cols, data };
  singularValues(matrix);
  const times: number[] = [];
  for (let run = 0; run < shape.runs; run++) {
    const start = performance.now();
    singularValues(matrix);
    times.push(performance.now() - start);
  }
  return median(times);
}

const NUMPY_SCRIPT = `
import json, sys, time
import numpy as np
shapes = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
out = []
for rows, cols, runs in shapes:
    a = rng.standard_normal((rows, cols))
    np.linalg.svd(a, compute_uv=False)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        np.linalg.svd(a, compute_uv=False)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    n = len(times)
    out.append(times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2)
print(json.dumps(out))
`;

/** Why numpy cannot serve as the reference, or undefined when `python3 -c "import numpy"` works. */
function numpyProblem(): string | undefined {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.error) return `python3 could not be started (${probe.error.message})`;
  if (probe.status !== 0) return `python3 cannot import numpy (${(probe.stderr || '').trim().split('\n').pop()})`;
  return undefined;
}

function timeNumpy(shapes: readonly SvdBenchShape[]): Promise<number[]> {
  const argument = JSON.stringify(shapes.map((s) => [s.rows, s.cols, s.runs]));
  return new Promise((resolve, reject) => {
    execFile(
      'python3',
      ['-c', NUMPY_SCRIPT, argument],
      { env: { ...process.env, ...ONE_THREAD }, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`numpy reference failed: ${error.message}${stderr ? `\n${stderr}` : ''}`));
          return;
        }
        const medians: unknown = JSON.parse(stdout);
        if (!Array.isArray(medians) || medians.length !== shapes.length) {
          reject(new Error(`numpy reference printed an unexpected result: ${stdout.trim()}`));
          return;
        }
        resolve(medians.map(Number));
      },
    );
  });
}

/** Times every shape with `singularValues` and, when numpy is there, with LAPACK. */
export async function runSvdBench(shapes: readonly SvdBenchShape[] = SVD_BENCH_SHAPES): Promise<SvdBenchResult> {
  const ours = shapes.map(timeSingularValues);
  const problem = numpyProblem();
  const lapack = problem === undefined ? await timeNumpy(shapes) : undefined;
  const rows = shapes.map((shape, i): SvdBenchRow => {
    const lapackMs = lapack ? lapack[i]! : null;
    return { ...shape, ms: ours[i]!, lapackMs, ratio: lapackMs ? ours[i]! / lapackMs : null };
  });
  return problem === undefined ? { rows } : { rows, lapackUnavailable: problem };
}

/** The result as a small table, one line per shape. */
export function formatSvdBench(result: SvdBenchResult): string {
  const lines = ['singular values (ms per matrix, median; LAPACK = numpy.linalg.svd(compute_uv=False), 1 thread)'];
  lines.push(`${'shape'.padEnd(12)}${'zerolm'.padStart(10)}${'LAPACK'.padStart(10)}${'ratio'.padStart(8)}`);
  for (const row of result.rows) {
    const lapack = row.lapackMs === null ? 'n/a' : row.lapackMs.toFixed(1);
    const ratio = row.ratio === null ? 'n/a' : `${row.ratio.toFixed(2)}x`;
    lines.push(`${`${row.rows}x${row.cols}`.padEnd(12)}${row.ms.toFixed(1).padStart(10)}${lapack.padStart(10)}${ratio.padStart(8)}`);
  }
  if (result.lapackUnavailable) lines.push(`LAPACK reference unavailable: ${result.lapackUnavailable}`);
  return lines.join('\n');
}

if (require.main === module) {
  runSvdBench().then(
    (result) => console.log(formatSvdBench(result)),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
