/**
 * Benchmark of `singularValues` with each kind of product kernels (TypeScript and WebAssembly
 * SIMD) against numpy/LAPACK (`numpy.linalg.svd(a, compute_uv=False)`, i.e. dgesdd without
 * vectors) on one thread.
 *
 *   npx tsc -b tools && node tools/dist/bench/svd.js
 *
 * All sides time Gaussian matrices of the same shapes in the same run: a warm-up call each, then
 * the median of a few timed calls, the two kernel kinds alternating call by call so that both
 * meet the same machine load (printed as the load average, since the machine may be shared).
 * numpy is run by spawning python3 with OMP/OpenBLAS/MKL limited to one thread; without numpy
 * the reference column says so.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { defaultProductKernels, drawMatrix, singularValues, type Matrix, type ProductKernels } from '@zerolm/core';
import { median } from './timing';

export interface SvdBenchShape {
  readonly rows: number;
  readonly cols: number;
  /** Timed calls after the warm-up; the median is reported. */
  readonly runs: number;
}

export interface SvdBenchRow extends SvdBenchShape {
  /** Median milliseconds per matrix of `singularValues` with the TypeScript kernels. */
  readonly typescriptMs: number;
  /** Same with the WebAssembly SIMD kernels, or null where they cannot run. */
  readonly wasmMs: number | null;
  /** Median milliseconds per matrix of numpy/LAPACK, or null when numpy is unavailable. */
  readonly lapackMs: number | null;
  /** typescriptMs / lapackMs (how many times slower than LAPACK), or null. */
  readonly typescriptRatio: number | null;
  /** wasmMs / lapackMs, or null. */
  readonly wasmRatio: number | null;
}

export interface SvdBenchResult {
  readonly rows: SvdBenchRow[];
  /** What `singularValues` uses by default in this process (`auto`). */
  readonly defaultKernels: 'wasm-simd' | 'typescript';
  /** Why there is no WebAssembly column, when there is none. */
  readonly wasmUnavailable?: string;
  /** Why there is no LAPACK column, when there is none. */
  readonly lapackUnavailable?: string;
  /** 1-minute load averages before and after the run (os.loadavg()[0]). */
  readonly load: readonly [number, number];
}

export const SVD_BENCH_SHAPES: readonly SvdBenchShape[] = [
  { rows: 256, cols: 256, runs: 9 },
  { rows: 1024, cols: 256, runs: 7 },
  { rows: 1024, cols: 1024, runs: 5 },
  { rows: 3072, cols: 768, runs: 3 },
];

const ONE_THREAD = { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

/** Median ms per call of each kernel kind on one matrix, the kinds taking turns call by call. */
function timeSingularValues(shape: SvdBenchShape, kinds: readonly Exclude<ProductKernels, 'auto'>[]): number[] {
  const data = drawMatrix({ kind: 'normal', std: 1 }, shape.rows, shape.cols, `bench ${shape.rows}x${shape.cols}`);
  const matrix: Matrix = { rows: shape.rows, cols: shape.cols, data };
  for (const kernels of kinds) singularValues(matrix, { kernels });
  const times = kinds.map((): number[] => []);
  for (let run = 0; run < shape.runs; run++) {
    kinds.forEach((kernels, k) => {
      const start = performance.now();
      singularValues(matrix, { kernels });
      times[k]!.push(performance.now() - start);
    });
  }
  return times.map(median);
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

/** Times every shape with both kinds of kernels and, when numpy is there, with LAPACK. */
export async function runSvdBench(shapes: readonly SvdBenchShape[] = SVD_BENCH_SHAPES): Promise<SvdBenchResult> {
  const loadBefore = os.loadavg()[0]!;
  const defaults = defaultProductKernels();
  // The TypeScript kernels always run; WebAssembly unless unsupported (ZEROLM_NO_WASM only
  // changes the default, so both columns are still printed under it).
  const probe = wasmProblem();
  const kinds = probe === undefined ? (['typescript', 'wasm-simd'] as const) : (['typescript'] as const);
  const ours = shapes.map((shape) => timeSingularValues(shape, kinds));
  const problem = numpyProblem();
  const lapack = problem === undefined ? await timeNumpy(shapes) : undefined;
  const ratio = (ms: number | null, reference: number | null): number | null => (ms !== null && reference ? ms / reference : null);
  const rows = shapes.map((shape, i): SvdBenchRow => {
    const lapackMs = lapack ? lapack[i]! : null;
    const typescriptMs = ours[i]![0]!;
    const wasmMs = ours[i]![1] ?? null;
    return { ...shape, typescriptMs, wasmMs, lapackMs, typescriptRatio: ratio(typescriptMs, lapackMs), wasmRatio: ratio(wasmMs, lapackMs) };
  });
  return {
    rows,
    defaultKernels: defaults.kernels,
    ...(probe === undefined ? {} : { wasmUnavailable: probe }),
    ...(problem === undefined ? {} : { lapackUnavailable: problem }),
    load: [loadBefore, os.loadavg()[0]!],
  };
}

/** Why the WebAssembly kernels cannot run, or undefined when they can. */
function wasmProblem(): string | undefined {
  try {
    singularValues({ rows: 2, cols: 2, data: Float64Array.of(1, 2, 3, 4) }, { kernels: 'wasm-simd' });
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** The result as a small table, one line per shape. */
export function formatSvdBench(result: SvdBenchResult): string {
  const lines = [
    'singular values (ms per matrix, median; LAPACK = numpy.linalg.svd(compute_uv=False), 1 thread;',
    `ratio = ms / LAPACK ms; default kernels here: ${result.defaultKernels}; ` +
      `load average ${result.load[0].toFixed(2)} before, ${result.load[1].toFixed(2)} after on ${os.cpus().length} CPUs)`,
  ];
  const cell = (value: number | null, digits: number, suffix = ''): string => (value === null ? 'n/a' : `${value.toFixed(digits)}${suffix}`);
  lines.push(
    `${'shape'.padEnd(12)}${'TS'.padStart(9)}${'WASM'.padStart(9)}${'LAPACK'.padStart(9)}${'TS ratio'.padStart(10)}${'WASM ratio'.padStart(12)}`,
  );
  for (const row of result.rows) {
    lines.push(
      `${`${row.rows}x${row.cols}`.padEnd(12)}${cell(row.typescriptMs, 1).padStart(9)}${cell(row.wasmMs, 1).padStart(9)}` +
        `${cell(row.lapackMs, 1).padStart(9)}${cell(row.typescriptRatio, 2, 'x').padStart(10)}${cell(row.wasmRatio, 2, 'x').padStart(12)}`,
    );
  }
  if (result.wasmUnavailable) lines.push(`WebAssembly kernels unavailable: ${result.wasmUnavailable}`);
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
