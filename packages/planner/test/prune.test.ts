/**
 * The whole pipeline through the public API: plan, export, score the export, compare. These are
 * the proofs that tie the planner and the exporter together: the score of the exported
 * model equals the planner's score of that candidate, its parameters equal the plan's and fit
 * the budget, and pruned variants compare as they should.
 */
import { countParams, scoreReport } from '@zerolm/core';
import { loadHfModel } from '@zerolm/adapters';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import { join } from 'path';
import { compareModels } from '@zerolm/compare';
import { exportPrunedModel } from '@zerolm/export';
import { prune, pruneSweep, sweepFolderName } from '../src';
import { plantedPlan, tempRoot } from '../../export/test/export-helpers';

const root = tempRoot('prune');
beforeAll(() => ensureFixtures(['llama-tiny', 'gpt2-tiny', 'bert-tiny', 'llama-planted', 'bert-planted']));
afterAll(() => root.remove());

describe('prune', () => {
  it.each([
    ['llama-tiny', { targetParams: 0.5 }],
    ['gpt2-tiny', { targetParams: 0.6, granularity: 'heads,ffn,layers' }],
    ['bert-tiny', { targetFlops: 0.7, variant: 'log' as const, alpha: 0.3 }],
  ])('%s: the exported model scores what the planner scored, with the planned parameters, within budget', async (name, budget) => {
    const out = join(root.dir, `${name}-${Object.keys(budget).join('-')}`);
    const result = await prune(fixturePath(name), { ...budget, out, evals: 300 });
    const exported = loadHfModel(out);
    const report = scoreReport(exported.graph, { measure: result.plan.measure, alpha: result.plan.alpha, variant: result.plan.variant });
    expect(Math.abs(report.score / result.plan.score.after - 1)).toBeLessThan(1e-4);
    expect(countParams(exported.graph).modules).toBe(result.plan.params.after);
    if (result.plan.params.budget !== undefined) expect(result.plan.params.after).toBeLessThanOrEqual(result.plan.params.budget);
    if (result.plan.flops.budget !== undefined) expect(result.plan.flops.after).toBeLessThanOrEqual(result.plan.flops.budget);
    expect(result.plan.provider).toMatch(/^(cpu|cuda|typescript)$/);

    const planJson = JSON.parse(fs.readFileSync(join(out, 'plan.json'), 'utf8'));
    expect(planJson).toEqual(JSON.parse(JSON.stringify(result.planFile)));
    expect(planJson.layers.map((l: { keptNeurons: number[] }) => l.keptNeurons.length)).toEqual(
      result.plan.plan.layers.map((l) => (l.dropped ? l.keptNeurons.length : l.keptNeurons.length)),
    );
    const afterSum = planJson.layers.reduce((s: number, l: { params: { after: number } }) => s + l.params.after, 0);
    expect(afterSum).toBe(result.plan.params.after);
    const config = JSON.parse(fs.readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.zerolm.budget).toEqual(planJson.budget);
  });

  it('lands at the budget by default, and may stay under it with fillBudget false', async () => {
    const filled = await prune(fixturePath('llama-tiny'), { targetParams: 0.75, planOnly: true, evals: 300 });
    const free = await prune(fixturePath('llama-tiny'), { targetParams: 0.75, planOnly: true, evals: 300, fillBudget: false });
    expect(free.plan.score.after).toBeGreaterThanOrEqual(filled.plan.score.after - 1e-12);
    expect(filled.plan.params.after).toBeGreaterThanOrEqual(free.plan.params.after);
    const smallestStep = 8 * 3 * 32; // 8 neurons of a gated FFN with hidden 32
    expect(filled.plan.params.budget! - filled.plan.params.after).toBeLessThan(smallestStep);
  });

  it('writes nothing with planOnly, and refuses to run without an output folder', async () => {
    const out = join(root.dir, 'plan-only');
    const result = await prune(fixturePath('llama-tiny'), { targetParams: 0.5, planOnly: true, out, evals: 100 });
    expect(result.export).toBeUndefined();
    expect(fs.existsSync(out)).toBe(false);
    await expect(prune(fixturePath('llama-tiny'), { targetParams: 0.5 })).rejects.toThrow(/output folder/);
  });

  it('meets a latency limit by measuring exported candidates', async () => {
    const out = join(root.dir, 'latency');
    await expect(prune(fixturePath('gpt2-tiny'), { maxLatencyMs: 10_000, out, evals: 100 })).rejects.toThrow(/at most 64 positions/);
    const result = await prune(fixturePath('gpt2-tiny'), { maxLatencyMs: 10_000, seqLen: 32, out, evals: 100, latencyRuns: 2 });
    expect(result.plan.latency?.checks.length).toBeGreaterThan(0);
    expect(result.plan.latency!.ms).toBeGreaterThan(0);
    expect(result.plan.latency!.ms).toBeLessThanOrEqual(10_000);
  });
});

describe('compare with pruned variants', () => {
  it('a decoder variant without its planted all-zero units: top-1 1, KL 0, the same perplexity', async () => {
    const source = fixturePath('llama-planted');
    const out = join(root.dir, 'llama-planted-pruned');
    await exportPrunedModel(source, plantedPlan('llama-planted').plan, out);
    const report = await compareModels(source, [out], { runs: 2, warmup: 1, maxSamples: 12 });
    const variant = report.models[1]!;
    expect(variant.params.modules).toBeLessThan(report.models[0]!.params.modules);
    if (variant.fidelity.kind !== 'decoder' || report.models[0]!.fidelity.kind !== 'decoder') throw new Error('expected decoders');
    expect(variant.fidelity.top1Agreement).toBe(1);
    expect(variant.fidelity.klDivergence).toBeLessThan(1e-9);
    expect(Math.abs(variant.fidelity.perplexity / report.models[0]!.fidelity.perplexity - 1)).toBeLessThan(1e-5);
  });

  it('an encoder variant without its planted all-zero units: cosines 1', async () => {
    const source = fixturePath('bert-planted');
    const out = join(root.dir, 'bert-planted-pruned');
    await exportPrunedModel(source, plantedPlan('bert-planted').plan, out);
    const report = await compareModels(source, [out], { runs: 2, warmup: 1, maxSamples: 12 });
    const fidelity = report.models[1]!.fidelity;
    if (fidelity.kind !== 'encoder') throw new Error('expected an encoder');
    expect(fidelity.tokenCosine).toBeGreaterThan(1 - 1e-6);
    expect(fidelity.sentenceCosine).toBeGreaterThan(1 - 1e-6);
  });

  it('sweeps budgets into p<percent> folders and compares them with the input', async () => {
    const out = join(root.dir, 'sweep');
    const sweep = await pruneSweep(fixturePath('llama-tiny'), { out, fractions: [0.9, 0.5], evals: 100, compare: { runs: 2, warmup: 1, maxSamples: 8 } });
    expect(sweep.variants.map((v) => v.dir)).toEqual([join(out, 'p90'), join(out, 'p50')]);
    expect(sweep.comparison.models.map((m) => m.role)).toEqual(['reference', 'variant', 'variant']);
    const [, p90, p50] = sweep.comparison.models;
    expect(p50!.params.modules).toBeLessThan(p90!.params.modules);
    expect(sweepFolderName(0.125)).toBe('p12.5');
    await expect(pruneSweep(fixturePath('llama-tiny'), { out, fractions: [1.2] })).rejects.toThrow(/fractions in \(0, 1\)/);
  });
});
