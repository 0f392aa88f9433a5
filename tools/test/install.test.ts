/**
 * The packages as a user installs them: every publishable workspace packed, the tarballs installed
 * into a fresh project outside the workspace with no network (`npm ci --offline` from the npm
 * cache), then the `zerolm` command and an ES module and a CommonJS script run from that project.
 */
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { installOffline, run } from '../src/checks/offline-install';

const root = resolve(__dirname, '../..');
const workspaces = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).workspaces as string[]).filter(
  (dir) => JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')).private !== true,
);

let project: string;
let tarballs: Map<string, string>;

beforeAll(() => {
  ensureFixtures(['llama-tiny']);
  project = mkdtempSync(join(tmpdir(), 'zerolm-user-project-'));
  tarballs = installOffline(root, workspaces, project, ['@huggingface/transformers']);
  for (const script of ['prune-and-load.mjs', 'prune-and-load.cjs']) copyFileSync(join(__dirname, 'install', script), join(project, script));
}, 300_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('installed from packed tarballs into a project outside the workspace', () => {
  test('every publishable package is packed, with a README and its built files only', () => {
    expect([...tarballs.keys()].sort()).toEqual(
      ['@zerolm/adapters', '@zerolm/cli', '@zerolm/compare', '@zerolm/core', '@zerolm/export', '@zerolm/onnx', '@zerolm/planner', '@zerolm/runtime'],
    );
    for (const name of tarballs.keys()) {
      const installed = join(project, 'node_modules', name);
      expect(existsSync(join(installed, 'README.md'))).toBe(true);
      expect(existsSync(join(installed, 'src'))).toBe(false);
      const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
      expect(manifest).toMatchObject({ license: 'MIT', repository: { type: 'git' } });
      expect(manifest.private).toBeUndefined();
    }
  });

  test('npx zerolm --help lists the four commands', () => {
    const help = run('npx', ['--offline', 'zerolm', '--help'], project).stdout;
    for (const command of ['score', 'rank', 'prune', 'compare']) expect(help).toMatch(new RegExp(`zerolm ${command}`));
  });

  test('npx zerolm prune writes a pruned model folder', () => {
    const out = join(project, 'cli-p50');
    const printed = run('npx', ['--offline', 'zerolm', 'prune', fixturePath('llama-tiny'), '--out', out, '--target-params', '0.5', '--json'], project).stdout;
    const plan = JSON.parse(printed);
    expect(plan.params.after).toBeLessThanOrEqual(plan.params.budget);
    expect(existsSync(join(out, 'onnx/model.onnx'))).toBe(true);
    expect(existsSync(join(out, 'plan.json'))).toBe(true);
  });

  test.each(['prune-and-load.mjs', 'prune-and-load.cjs'])('%s prunes, compares and generates with the pruned folder', (script) => {
    const out = join(project, `${script.replace(/\W/g, '-')}-p50`);
    const printed = run(process.execPath, [script, fixturePath('llama-tiny'), out], project).stdout.trim().split('\n').pop()!;
    const result = JSON.parse(printed);
    expect(result.params.after).toBeLessThan(result.params.before);
    expect(result.compared).toBe(2);
    expect(typeof result.text).toBe('string');
    expect(result.text.startsWith('the')).toBe(true);
  });
});
