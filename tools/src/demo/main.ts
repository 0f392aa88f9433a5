/**
 * The README's main job: everything a newcomer needs to see the product work, on a model the
 * project generates itself (no download, no flags). Each step runs the real `zerolm` command and
 * shows it.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { ensureFixtures, fixturePath } from '../fixtures';

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
  zerolm(['score', source]);
  // Three pruned variants, each a model folder transformers.js loads, compared with the source.
  zerolm(['prune', source, '--out', out, '--sweep', '0.9,0.75,0.5', '--force']);
}

main();
