import { loadTokenizer } from '@zerolm/runtime';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectCleanError, runCli } from './run-cli';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-prune-cli-'));
  ensureFixtures(['llama-tiny', 'bert-tiny']);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('zerolm prune', () => {
  it('plans, exports and reports; score on the export equals the planned score', () => {
    const out = path.join(dir, 'llama-50');
    const result = runCli(['prune', fixturePath('llama-tiny'), '--out', out, '--target-params', '0.5', '--evals', '200']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Attention\+FFN parameters 18\.4K -> 9216 \(50\.0%\)/);
    expect(result.stdout).toMatch(/scored on (onnxruntime (cpu|cuda)|TypeScript)/);
    expect(result.stdout).toContain(`wrote ${out}`);
    for (const file of ['config.json', 'plan.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx', 'onnx/model_quantized.onnx']) {
      expect(fs.existsSync(path.join(out, file))).toBe(true);
    }
    const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
    const scored = JSON.parse(runCli(['score', out, '--json', '--measure', plan.measure]).stdout);
    expect(plan.measure).toBe('nuclear-bound');
    expect(Math.abs(scored.score / plan.score.after - 1)).toBeLessThan(1e-4);
    expect(scored.params.modules).toBe(plan.params.after);
  });

  it('takes the importance rule and the correction, and plan.json records them with the calibration', () => {
    const weights = JSON.parse(runCli(['prune', fixturePath('llama-tiny'), '--target-params', '0.5', '--plan-only', '--json', '--importance', 'magnitude', '--correction', 'none', '--evals', '50']).stdout);
    expect(weights.importance).toEqual({ rule: 'magnitude' });
    expect(weights.correction).toEqual({ method: 'none' });
    expect(weights.calibration).toBeUndefined();
    expect(weights.score.after).toBe(weights.score.searched);
    const result = runCli(['prune', fixturePath('llama-tiny'), '--target-params', '0.5', '--plan-only', '--evals', '50', '--calibration-samples', '8', '--calibration-length', '16']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/importance self-generated \(attention by KL of its own predictions; FFN by OBS\)/);
    expect(result.stdout).toMatch(/calibration self-generated, 8 x 16 tokens, seed 0: sampled from the model itself starting at its BOS token/);
    expect(result.stdout).toMatch(/correction refit \(\d+ matrices refitted\)/);
    expect(result.stdout).toMatch(/^time: calibration [\d.]+ s \(sequences [\d.]+ s, statistics [\d.]+ s\), importance [\d.]+ s, search [\d.]+ s, correction [\d.]+ s, export 0\.0 s, total [\d.]+ s$/m);
    // The forced rules real-size models get, named per layer with the reason.
    const forced = runCli(['prune', fixturePath('llama-tiny'), '--target-params', '0.5', '--plan-only', '--evals', '50', '--calibration-samples', '8', '--calibration-length', '16', '--ffn-importance', 'chunked-obs', '--attention-importance', 'block-obs']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/importance self-generated \(attention by block OBS \(asked for \(--attention-importance block-obs\)\); FFN by OBS in 64 steps of 1\)/);
    expect(forced.stdout).toMatch(/^attention units of every layer by block OBS on o: asked for/m);
    expect(forced.stdout).toMatch(/^FFN neurons of every layer by OBS in 64 steps of 1: asked for \(--ffn-importance chunked-obs\)/m);
    const json = JSON.parse(runCli(['prune', fixturePath('llama-tiny'), '--target-params', '0.5', '--plan-only', '--json', '--evals', '50', '--calibration-samples', '8', '--calibration-length', '16', '--ffn-importance', 'energy']).stdout);
    expect(json.importance.ffn).toEqual([expect.objectContaining({ method: 'energy' }), expect.objectContaining({ method: 'energy' })]);
    expect(Object.keys(json.timings)).toEqual(['calibrationMs', 'sequencesMs', 'statisticsMs', 'importanceMs', 'searchMs', 'correctionMs', 'exportMs', 'totalMs']);
    const help = runCli(['prune', '--help']).stdout;
    expect(help).toMatch(/--importance +which units to keep inside a layer: magnitude, random, self-generated, wanda-sp,\s+flap/);
    expect(help).toMatch(/--correction/);
  });

  it('calibrates on a text file with --calibration-text, and plan.json records the file', async () => {
    const text = path.join(dir, 'calibration.txt');
    const line = 'the baker opened her shop before the sun came up , and the stranger asked where he might find the library';
    fs.writeFileSync(text, Array.from({ length: 12 }, () => line).join('\n'));
    const fileTokens = 12 * (await loadTokenizer(fixturePath('llama-tiny'))).encode(line).length;
    const out = path.join(dir, 'llama-text');
    const result = runCli(['prune', fixturePath('llama-tiny'), '--out', out, '--target-params', '0.5', '--evals', '50', '--calibration-text', text, '--calibration-samples', '8', '--calibration-length', '16']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`calibration text: ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(sha256 [0-9a-f]{12}\\.\\.\\., 128 of its ${fileTokens} tokens\\), 8 x 16 tokens`));
    const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
    expect(plan.calibration).toMatchObject({ source: 'text', samples: 8, length: 16, text: { file: text, lines: 12, fileTokens, tokensUsed: 128 } });
    expect(plan.calibration.text.sha256).toMatch(/^[0-9a-f]{64}$/);
    const uniform = JSON.parse(runCli(['prune', fixturePath('llama-tiny'), '--target-params', '0.5', '--plan-only', '--json', '--evals', '50', '--calibration', 'uniform', '--calibration-samples', '4', '--calibration-length', '8']).stdout);
    expect(uniform.calibration).toMatchObject({ source: 'uniform', samples: 4 });
  });

  it.each([
    ['empty', '', /calibration text .*empty\.txt is empty/],
    ['binary', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0x02]), /binary\.txt is binary \(it holds NUL bytes\), not plain text/],
    ['short', 'the baker opened her shop\n', /short\.txt is too short: 7 tokens, and 32 sequences need 2048 \(32 x 64\)/],
  ])('refuses a calibration text that is %s with one line, exit code 2, and writes nothing', (name, content, pattern) => {
    const text = path.join(dir, `${name}.txt`);
    fs.writeFileSync(text, content);
    const out = path.join(dir, `text-${name}`);
    expectCleanError(runCli(['prune', fixturePath('llama-tiny'), '--out', out, '--target-params', '0.5', '--calibration-text', text]), pattern);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('prints the plan as JSON and writes nothing with --plan-only', () => {
    const out = path.join(dir, 'never-written');
    const result = runCli(['prune', fixturePath('bert-tiny'), '--out', out, '--target-flops', '0.6', '--plan-only', '--json', '--search', 'greedy']);
    expect(result.code).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan).toMatchObject({ family: 'bert', measure: 'nuclear-bound', alpha: 0.5, search: { method: 'greedy' } });
    expect(plan.flops.after).toBeLessThanOrEqual(plan.budget.flops);
    expect(plan.layers[0]).toEqual(expect.objectContaining({ keptGroups: expect.any(Array), keptNeurons: expect.any(Array) }));
    expect(plan.out).toBeUndefined();
    expect(fs.existsSync(out)).toBe(false);
  });

  it('sweeps budgets and ends with the comparison table and plot', () => {
    const out = path.join(dir, 'sweep');
    const result = runCli(['prune', fixturePath('llama-tiny'), '--out', out, '--sweep', '0.9,0.5', '--evals', '100']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^p90: /m);
    expect(result.stdout).toMatch(/^p50: /m);
    expect(result.stdout).toMatch(/llama-tiny \(ref\)/);
    expect(result.stdout).toMatch(/top-1 +KL +ppl/);
    for (const name of ['p90', 'p50']) expect(fs.existsSync(path.join(out, name, 'plan.json'))).toBe(true);
    expect(fs.readFileSync(path.join(out, 'comparison.svg'), 'utf8')).toMatch(/^<svg/);
  });

  it.each([
    [['--target-params', '0.001'], /cannot be met.*add 'layers' to the granularity/],
    [['--target-params', '1.5'], /--target-params must be a fraction in \(0, 1\] or a whole count above 1/],
    [['--target-params', '0'], /--target-params must be a fraction/],
    [[], /give a budget/],
    [['--target-params', '0.5', '--granularity', 'heads,wings'], /granularity/],
    [['--target-params', '0.5', '--search', 'annealing'], /--search must be one of evolutionary, greedy, uniform, global/],
    [['--sweep', '0.9,1.5'], /--sweep takes fractions in \(0, 1\)/],
    [['--target-params', '0.5', '--correction', 'lsq'], /--correction must be one of refit, bias, none/],
    [['--target-params', '0.5', '--importance', 'taylor'], /--importance must be one of magnitude, random, self-generated, wanda-sp, flap/],
    [['--target-params', '0.5', '--calibration', 'books'], /--calibration must be one of self-generated, text, uniform/],
    [['--target-params', '0.5', '--calibration', 'text'], /--calibration text needs --calibration-text FILE/],
    [['--target-params', '0.5', '--calibration', 'uniform', '--calibration-text', 'x.txt'], /--calibration-text goes with --calibration text \(got --calibration uniform\)/],
      [['--target-params', '0.5', '--ffn-importance', 'magic'], /--ffn-importance must be one of obs, chunked-obs, energy/],
  ])('fails cleanly with %j and writes nothing', (extra, pattern) => {
    const out = path.join(dir, `bad-${Math.random().toString(36).slice(2)}`);
    expectCleanError(runCli(['prune', fixturePath('llama-tiny'), '--out', out, ...(extra as string[])]), pattern as RegExp);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('refuses an output folder inside the input, and a non-empty one without --force', () => {
    const model = path.join(dir, 'model-copy');
    fs.cpSync(fixturePath('llama-tiny'), model, { recursive: true });
    const before = fs.readFileSync(path.join(model, 'onnx/model.onnx'));
    expectCleanError(runCli(['prune', model, '--out', path.join(model, 'pruned'), '--target-params', '0.5']), /inside \(or is\) the input model folder/);
    const busy = path.join(dir, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'keep.txt'), 'mine');
    expectCleanError(runCli(['prune', model, '--out', busy, '--target-params', '0.5']), /not empty \(replace it with --force/);
    expect(fs.readdirSync(busy)).toEqual(['keep.txt']);
    expect(runCli(['prune', model, '--out', busy, '--target-params', '0.5', '--force', '--evals', '50']).code).toBe(0);
    expect(fs.existsSync(path.join(busy, 'keep.txt'))).toBe(false);
    expect(fs.readFileSync(path.join(model, 'onnx/model.onnx')).equals(before)).toBe(true);
    expect(fs.existsSync(path.join(model, 'pruned'))).toBe(false);
  });

  it('fails cleanly on an unsupported family', () => {
    const model = path.join(dir, 'bloom');
    fs.cpSync(fixturePath('llama-tiny'), model, { recursive: true });
    const config = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(model, 'config.json'), JSON.stringify({ ...config, model_type: 'bloom' }));
    expectCleanError(runCli(['prune', model, '--out', path.join(dir, 'bloom-out'), '--target-params', '0.5']), /unsupported model family "bloom"/);
    expect(fs.existsSync(path.join(dir, 'bloom-out'))).toBe(false);
  });
});
