/**
 * Times commands as whole processes, the way a user meets them: start-up, module loading and exit
 * included. Wall-clock only (Node gives no child CPU accounting), so quote the median and read
 * min..max as the noise of the machine.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { CLI } from './registry';

export interface ProcessTiming {
  /** Wall seconds of each counted run, in run order. */
  readonly seconds: number[];
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly warmups: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs `command args` `warmups + runs` times in sequence, output discarded, and summarises the
 * wall time of the counted runs. Throws with the command's first stderr line when a run fails or
 * outlasts `timeoutMs`.
 */
export function timeProcess(
  command: string,
  args: readonly string[],
  options: { runs: number; warmups?: number; cwd?: string; timeoutMs?: number },
): ProcessTiming {
  const warmups = options.warmups ?? 0;
  if (!Number.isInteger(options.runs) || options.runs < 1) throw new Error(`runs must be a positive integer (got ${options.runs})`);
  const seconds: number[] = [];
  for (let run = 0; run < warmups + options.runs; run++) {
    const start = performance.now();
    const result = spawnSync(command, args, {
      cwd: options.cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
      timeout: options.timeoutMs ?? 600_000,
      maxBuffer: 1 << 24,
    });
    const elapsed = (performance.now() - start) / 1000;
    if (result.error) throw new Error(`${command} ${args.join(' ')}: ${result.error.message}`);
    if (result.status !== 0) {
      const why = (result.stderr ?? '').trim().split('\n')[0] || `signal ${result.signal}`;
      throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${why}`);
    }
    if (run >= warmups) seconds.push(elapsed);
  }
  return { seconds, min: Math.min(...seconds), median: median(seconds), max: Math.max(...seconds), warmups };
}

/** "median 0.81 s (min 0.78, max 0.90; 5 runs after 1 warm-up)". */
export function formatTiming(timing: ProcessTiming): string {
  const digits = timing.median < 10 ? 2 : 1;
  const s = (x: number): string => x.toFixed(digits);
  const runs = `${timing.seconds.length} run${timing.seconds.length === 1 ? '' : 's'}`;
  const warm = timing.warmups > 0 ? ` after ${timing.warmups} warm-up${timing.warmups === 1 ? '' : 's'}` : '';
  return `median ${s(timing.median)} s (min ${s(timing.min)}, max ${s(timing.max)}; ${runs}${warm})`;
}

export interface CliRun {
  /** Wall seconds of the whole child process. */
  seconds: number;
  /** CPU seconds (user + system) the child reports. */
  cpuSeconds: number;
  /** The child's peak resident set size, bytes. */
  peakBytes: number;
  stdout: string;
}

/**
 * Runs `zerolm args` (the built CLI) in a child process that reports its own peak memory
 * and CPU time on exit. The peak is Linux's VmHWM, the high-water mark of the child's own address
 * space: `resourceUsage().maxRSS` would start at the parent's resident size, which a forked child
 * inherits across exec (a bench process holding 3 GB made every child "peak" at 3 GB).
 */
export function runCliMeasured(args: readonly string[], what: string): CliRun {
  const script =
    `require(${JSON.stringify(CLI)}).main(${JSON.stringify(args)}).then((code) => {` +
    ` const u = process.resourceUsage(); let kb = u.maxRSS;` +
    ` try { kb = Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]); } catch {}` +
    ` process.stderr.write('ZEROLM_PEAK_KB=' + kb + ' ZEROLM_CPU_US=' + (u.userCPUTime + u.systemCPUTime) + '\\n'); process.exitCode = code; });`;
  const started = performance.now();
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const seconds = (performance.now() - started) / 1000;
  const lines = (result.stderr ?? '').trim().split('\n').filter((l) => !l.startsWith('ZEROLM_PEAK_KB'));
  if (result.status !== 0) throw new Error(`${what} failed: ${lines.find((l) => l.startsWith('zerolm:')) ?? lines.pop() ?? `signal ${result.signal}`}`);
  const usage = /ZEROLM_PEAK_KB=(\d+) ZEROLM_CPU_US=(\d+)/.exec(result.stderr);
  return { seconds, cpuSeconds: usage ? Number(usage[2]) / 1e6 : NaN, peakBytes: usage ? Number(usage[1]) * 1024 : NaN, stdout: result.stdout };
}
