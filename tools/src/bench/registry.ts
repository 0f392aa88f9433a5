/**
 * The benchmark sections `npm run bench` runs. A section measures one thing (ranking time, SVD
 * speed, ...) and prints its own figures, each goal next to its figure; adding a benchmark means
 * writing a section and registering it in `bench/index.ts`.
 */
import * as path from 'node:path';

export interface BenchContext {
  /** Fewer repeats, for a quick look (`--quick`). */
  readonly quick: boolean;
  /** The shared data folder (`--data-dir`, else $ZEROLM_SHARED_DIR, else `../shared` next to the repository). */
  readonly sharedDir: string;
  /** The repository root. */
  readonly repoRoot: string;
  /** Prints one line of the section's report. */
  print(line?: string): void;
}

export interface BenchSection {
  /** Short name for `--only`. */
  readonly name: string;
  /** One line saying what is measured. */
  readonly title: string;
  /**
   * Measures and prints. Missing inputs (data, build) are a skip: print why and return. A thrown
   * error marks the section as failed (the other sections still run).
   */
  run(context: BenchContext): Promise<void>;
}

/** The repository root, seen from `tools/dist/bench` (or `tools/src/bench` under ts-jest). */
export const REPO_ROOT = path.resolve(__dirname, '../../..');

/** The built CLI the benches run as a child process. */
export const CLI = path.join(REPO_ROOT, 'apps/cli/dist/main.js');

/** Where the shared data is: the flag, else $ZEROLM_SHARED_DIR, else `../shared` next to the repository. */
export function resolveSharedDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, repoRoot = REPO_ROOT): string {
  if (flag !== undefined && flag !== '') return path.resolve(flag);
  const fromEnv = env['ZEROLM_SHARED_DIR'];
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  return path.resolve(repoRoot, '../shared');
}

/** "met" or "not met", for printing a figure next to its goal. */
export function goalVerdict(value: number, limit: number): string {
  return value < limit ? 'met' : 'not met';
}
