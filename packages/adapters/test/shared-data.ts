/**
 * Where the shared benchmark data lives, and a `describe` that runs only when it is there.
 *
 * The folder is `../shared` next to the repository root, or `$ZEROLM_SHARED_DIR`. Without it,
 * shared-data suites are skipped with a warning that says why; with
 * `ZEROLM_REQUIRE_SHARED_DATA=1` (CI) a missing folder or file fails the suite instead.
 *
 * Other packages' tests may import this file (`../../adapters/test/shared-data`).
 */
import { existsSync } from 'fs';
import * as path from 'path';

export const repoRoot = path.resolve(__dirname, '../../..');

export const sharedDir = process.env['ZEROLM_SHARED_DIR']
  ? path.resolve(process.env['ZEROLM_SHARED_DIR'])
  : path.resolve(repoRoot, '../shared');

export const requireSharedData = process.env['ZEROLM_REQUIRE_SHARED_DATA'] === '1';

/** Paths of the shared files the tests read. */
export const sharedPaths = {
  flexibertBenchmark: path.join(sharedDir, 'benchmarks/flexibert/BERT_benchmark.public.json'),
  flexibertBaselines: path.join(sharedDir, 'benchmarks/flexibert/baseline_proxies.public.csv'),
  ltsBenchmark: path.join(sharedDir, 'benchmarks/lts-gpt2-wt103/lts_gpt2_wt103.json'),
  modelsDir: path.join(sharedDir, 'models'),
} as const;

/** The given paths (default: the shared folder itself) that do not exist. */
export function missingSharedPaths(paths: readonly string[] = [sharedDir]): string[] {
  return paths.filter((p) => !existsSync(p));
}

/**
 * `describe(name, fn)` when every path in `needs` exists (default: the shared folder). Otherwise
 * the suite is skipped with a warning naming what is missing, or, when
 * `ZEROLM_REQUIRE_SHARED_DATA=1`, replaced by one failing test that says the same.
 */
export function describeShared(name: string, fn: () => void, needs: readonly string[] = [sharedDir]): void {
  const missing = missingSharedPaths(needs);
  if (missing.length === 0) {
    describe(name, fn);
    return;
  }
  const reason = `shared data missing: ${missing.join(', ')} (set ZEROLM_SHARED_DIR to the shared folder)`;
  if (requireSharedData) {
    describe(name, () => {
      it('has the shared data it needs (ZEROLM_REQUIRE_SHARED_DATA=1)', () => {
        throw new Error(reason);
      });
    });
    return;
  }
  // eslint-disable-next-line no-console
  console.warn(`skipping "${name}": ${reason}`);
  describe.skip(`${name} [skipped: ${reason}]`, fn);
}
