import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectCleanError, runCli } from './run-cli';

const spec = {
  format: 'zerolm-spec',
  name: 'tiny-gqa',
  hiddenSize: 64,
  layers: [{ heads: 4, kvHeads: 2, headDim: 16, ffnWidth: 128, gated: true, repeat: 2 }],
};

describe('zerolm score', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-score-'));
    fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    ensureFixtures(['llama-tiny', 'bert-tiny']);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('scores an architecture spec with a per-layer table', () => {
    const result = runCli(['score', path.join(dir, 'spec.json'), '--init', 'expected']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/tiny-gqa \(zerolm-spec\), measure msv, alpha 0.5/);
    expect(result.stdout.split('\n').filter((l) => /^\s+[01]\s+attention\s+4\s+2\s+16/.test(l))).toHaveLength(2);
    expect(result.stdout).toMatch(/^score \d/m);
  });

  it('prints the documented JSON for a model folder', () => {
    const result = runCli(['score', fixturePath('llama-tiny'), '--json', '--alpha', '0.3']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ family: 'llama', dtype: 'fp32', measure: 'msv', alpha: 0.3 });
    expect(report.model).toContain('llama-tiny');
    expect(report.layers).toHaveLength(2);
    const layer = report.layers[0];
    expect(layer.attention).toMatchObject({ heads: 4, kvHeads: 2, headDim: 8 });
    expect(layer.attention.matrices.map((m: { name: string }) => m.name)).toEqual(['q', 'k', 'v', 'o']);
    expect(layer.ffn.matrices.map((m: { name: string }) => m.name)).toEqual(['up', 'gate', 'down']);
    expect(layer.attention.matrices[0].tensor).toMatch(/^onnx::MatMul_\d+$/);
    expect(layer.attention.matrices[1].shape).toEqual([32, 16]);
    const sum = report.layers.reduce(
      (s: number, l: { attention: { capacity: number }; ffn: { capacity: number } }) => s + 0.3 * l.attention.capacity + 0.7 * l.ffn.capacity,
      0,
    );
    expect(report.score).toBeCloseTo(sum, 10);
    expect(report.params.modules).toBe(report.params.attention + report.params.ffn);
  });

  it('reads the q8 file with --dtype q8', () => {
    const fp32 = JSON.parse(runCli(['score', fixturePath('bert-tiny'), '--json']).stdout);
    const q8 = JSON.parse(runCli(['score', fixturePath('bert-tiny'), '--json', '--dtype', 'q8']).stdout);
    expect(q8.dtype).toBe('q8');
    expect(Math.abs(q8.score / fp32.score - 1)).toBeLessThan(0.02);
  });

  it.each([
    [['score', '/nonexistent/model'], /does not exist/],
    [['score', 'SPEC', '--alpha', '1.5'], /alpha must be in \[0, 1\]/],
    [['score', 'SPEC', '--measure', 'nope'], /unknown measure "nope"/],
    [['score', 'SPEC', '--dtype', 'q8'], /--dtype applies to model folders/],
    [['frobnicate'], /Unknown argument|unknown command|frobnicate/i],
  ])('fails cleanly: %j', (args, pattern) => {
    const resolved = (args as string[]).map((a) => (a === 'SPEC' ? path.join(dir, 'spec.json') : a));
    expectCleanError(runCli(resolved), pattern as RegExp);
  });

  it.each([
    ['a truncated ONNX file', (dir: string) => {
      const file = path.join(dir, 'onnx/model.onnx');
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 5000));
    }, /not a valid ONNX model/],
    ['a folder without config.json', (dir: string) => fs.rmSync(path.join(dir, 'config.json')), /no config.json/],
    ['an unsupported family', (dir: string) => {
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'bloom' }));
    }, /unsupported model family "bloom"/],
  ])('fails cleanly on %s', (_, damage, pattern) => {
    const model = path.join(dir, `damaged-${Math.random().toString(36).slice(2)}`);
    fs.cpSync(fixturePath('bert-tiny'), model, { recursive: true });
    damage(model);
    expectCleanError(runCli(['score', model]), pattern);
  });

  it('fails cleanly on a spec it does not recognise', () => {
    fs.writeFileSync(path.join(dir, 'odd.json'), JSON.stringify({ hello: 'world' }));
    expectCleanError(runCli(['score', path.join(dir, 'odd.json')]), /not a recognised architecture spec|spec/i);
  });
});
