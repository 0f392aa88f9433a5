/**
 * The README's main job: everything a newcomer needs to see the product work, on a model the
 * project generates itself (no download, no flags). Each step runs the real `zerolm` command and
 * shows it.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { DEFAULT_PRUNE_MEASURE } from '@zerolm/planner';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';

const repoRoot = path.resolve(__dirname, '../../..');
const cli = path.join(repoRoot, 'apps/cli/dist/main.js');

function zerolm(args: string[]): void {
  const shown = args.map((a) => (a.startsWith(repoRoot) ? path.relative(repoRoot, a) : a));
  process.stdout.write(`\n$ zerolm ${shown.join(' ')}\n`);
  const result = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`demo: "zerolm ${shown.join(' ')}" failed with exit code ${result.status}\n`);
    process.exit(result.status ?? 1);
  }
}

function main(): void {
  const model = 'llama-tiny';
  process.stdout.write(
    `Generating the bundled demo model (${model}: a 2-layer LLaMA-style decoder with grouped-query attention, random weights)...\n`,
  );
  ensureFixtures([model]);
  const relative = (p: string) => path.relative(process.cwd(), p) || '.';
  const source = relative(fixturePath(model));
  const out = relative(path.join(repoRoot, 'demo-output', model));
  // Scored with the measure the planner maximises, so that this score and the prune step's
  // "score before -> after" are the same number; `zerolm score` defaults to the paper's msv.
  process.stdout.write(
    `\nScored with ${DEFAULT_PRUNE_MEASURE}, the measure the pruning planner maximises (zerolm score defaults to the paper's msv, ` +
      `which ranks architectures well but rises as weak units are removed, so the planner does not use it).\n`,
  );
  zerolm(['score', source, '--measure', DEFAULT_PRUNE_MEASURE]);
  // Three pruned variants, each a model folder transformers.js loads, compared with the source.
  zerolm(['prune', source, '--out', out, '--sweep', '0.9,0.75,0.5', '--force']);
}

main();
