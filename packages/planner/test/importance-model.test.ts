/**
 * The default importance, `self-generated`: it runs the model on its own samples, so it needs the
 * model folder; it ranks planted all-zero units last; spec graphs fall back to magnitude unless
 * the rule is named.
 */
import { loadHfModel, specToGraph } from '@zerolm/adapters';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import {
  clearCalibrationCache,
  DEFAULT_IMPORTANCE,
  listImportances,
  planPrune,
  prepareRanking,
  rankUnits,
  selfGeneratedImportance,
} from '../src';
import { ffnRanking } from '../src/scoring/self-generated';
import { PLANTED, plantedUnits } from './search-helpers';

beforeAll(() => ensureFixtures([...PLANTED, 'llama-tiny', 'bert-tiny']));
afterAll(() => clearCalibrationCache());

describe('self-generated importance', () => {
  it('is the default and is listed with the weight rules', () => {
    expect(DEFAULT_IMPORTANCE).toBe('self-generated');
    expect(listImportances().map((r) => r.name)).toEqual(expect.arrayContaining(['magnitude', 'random', 'self-generated']));
  });

  it.each(PLANTED)('ranks the planted all-zero units of %s last', async (name) => {
    const model = loadHfModel(fixturePath(name));
    const { ranking, details } = await prepareRanking(model.graph, { model, importance: 'self-generated', seed: 0, calibration: { samples: 16, length: 32 } });
    expect(ranking.importance).toBe('self-generated');
    expect(details?.attention?.method).toBe(model.config.decoder ? 'kl' : 'hidden');
    expect(details?.ffn?.every((f) => f.method === 'obs')).toBe(true);
    let checked = 0;
    model.graph.layers.forEach((layer, l) => {
      const a = layer.attention;
      const { groups, neurons } = plantedUnits(name, l, layer);
      expect(new Set(ranking.groups[l]!.slice(a.kvHeads - groups.length))).toEqual(new Set(groups));
      expect(new Set(ranking.neurons[l]!.slice(layer.ffn.width - neurons.length))).toEqual(new Set(neurons));
      checked += groups.length + neurons.length;
    });
    expect(checked).toBeGreaterThanOrEqual(4);
  });

  it('needs the model folder: a named model rule fails on a spec graph, the default falls back to magnitude', async () => {
    const graph = specToGraph({ format: 'zerolm-spec', name: 'spec-only', hiddenSize: 32, layers: [{ heads: 4, headDim: 8, ffnWidth: 64, repeat: 2 }] });
    await expect(planPrune(graph, { targetParams: 0.5, importance: 'self-generated' })).rejects.toThrow(
      /importance "self-generated" runs the model, so it needs the model folder.*spec-only.*rules that read only the weights: magnitude, random/,
    );
    expect(() => rankUnits(graph, { importance: selfGeneratedImportance })).toThrow(/needs the model folder/);
    const result = await planPrune(graph, { targetParams: 0.5, evals: 50, backend: 'typescript' });
    expect(result.search.importance).toBe('magnitude');
    expect(result.importanceDetails?.fallback).toMatch(/default importance "self-generated" runs the model.*ranked by magnitude/);
    expect(rankUnits(graph).importance).toBe('magnitude');
  });

  it('ranks with the model when planPrune gets it, and records the calibration', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const result = await planPrune(model.graph, { model, targetParams: 0.5, evals: 50, seed: 4, calibration: { samples: 8, length: 16 } });
    expect(result.search.importance).toBe('self-generated');
    expect(result.importanceDetails?.calibration).toMatchObject({ samples: 8, length: 16, seed: 4, source: 'self-generated', bos: 2 });
    expect(result.importanceDetails?.attention).toEqual({ method: 'kl', passes: 2 * 2 });
    // Without a model folder the same graph is ranked by magnitude.
    const bare = await planPrune(model.graph, { targetParams: 0.5, evals: 50, seed: 4 });
    expect(bare.search.importance).toBe('magnitude');
  });

  it('takes the KL path within 96 passes (encoders: the hidden-state path), and says why it cannot otherwise', async () => {
    const model = loadHfModel(fixturePath('llama-planted'));
    const { details } = await prepareRanking(model.graph, { model, seed: 0, calibration: { samples: 4, length: 8 } });
    // 3 layers x 4 groups: 3 x (4 + 3 + 2) = 27 passes, under the limit of 96.
    expect(details?.attention).toEqual({ method: 'kl', passes: 27 });
    const { klUnavailable } = await import('../src/scoring/self-generated');
    const { calibrate } = await import('../src/calibration/calibrate');
    const calibration = await calibrate(model, { samples: 4, length: 8, seed: 0 });
    expect(klUnavailable(model, calibration, 26)).toMatch(/27 passes over the calibration sequences \(limit 26\)/);
    const bert = loadHfModel(fixturePath('bert-tiny'));
    // An encoder compares its final hidden states instead of next-token predictions.
    const bertCalibration = await calibrate(bert, { samples: 2, length: 8 });
    expect(klUnavailable(bert, bertCalibration)).toBeUndefined();
    expect(klUnavailable(bert, bertCalibration, 3)).toMatch(/ranking by the change of the hidden states would take 18 passes over the calibration sequences \(limit 3\)/);
    // It runs the whole model once per candidate: a FLOPs limit keeps real-size models on block OBS.
    expect(klUnavailable(model, calibration, 96, 1e6)).toMatch(/by KL would run the whole model 27 times, .* FLOPs \(limit 1e\+6\)/);
  });

  it('ranks FFN neurons by one rule at every width: exact OBS up to 1024 neurons, 64 steps above, and says why', () => {
    expect(ffnRanking('obs', 256)).toEqual({ method: 'obs' });
    expect(ffnRanking('obs', 1024)).toEqual({ method: 'obs' });
    expect(ffnRanking('obs', 4864)).toEqual({ method: 'chunked-obs', chunk: 76, steps: 64, reason: '4864 neurons: the greedy removes 76 per step (64 steps) above 1024' });
    expect(ffnRanking('obs', 5632)).toMatchObject({ method: 'chunked-obs', chunk: 88, steps: 64 });
    expect(ffnRanking('chunked-obs', 256)).toMatchObject({ method: 'chunked-obs', chunk: 4, steps: 64, reason: expect.stringMatching(/asked for/) });
    expect(ffnRanking('energy', 256)).toMatchObject({ method: 'energy', reason: expect.stringMatching(/asked for/) });
  });

  it('takes forced FFN and attention rules, records them per layer with the reason, and keeps planted units last', async () => {
    const model = loadHfModel(fixturePath('llama-planted'));
    const forced = await planPrune(model.graph, {
      model,
      targetParams: 0.6,
      evals: 50,
      ffnImportance: 'chunked-obs',
      attentionImportance: 'block-obs',
      calibration: { samples: 8, length: 16 },
    });
    expect(forced.importanceDetails?.attention).toEqual({ method: 'block-obs', reason: 'asked for (--attention-importance block-obs)' });
    expect(forced.importanceDetails?.ffn).toEqual(model.graph.layers.map(() => expect.objectContaining({ method: 'chunked-obs', chunk: 2, steps: 64 })));
    model.graph.layers.forEach((layer, l) => {
      const { groups, neurons } = plantedUnits('llama-planted', l, layer);
      expect(new Set(forced.ranking.groups[l]!.slice(layer.attention.kvHeads - groups.length))).toEqual(new Set(groups));
      expect(new Set(forced.ranking.neurons[l]!.slice(layer.ffn.width - neurons.length))).toEqual(new Set(neurons));
    });
    const energy = await planPrune(model.graph, { model, targetParams: 0.6, evals: 50, ffnImportance: 'energy', calibration: { samples: 8, length: 16 } });
    expect(energy.importanceDetails?.ffn?.[0]).toMatchObject({ method: 'energy' });
    await expect(planPrune(model.graph, { model, targetParams: 0.6, ffnImportance: 'nope' as never })).rejects.toThrow(/unknown FFN importance "nope" \(known: obs, chunked-obs, energy\)/);
    // Forced ablation on an encoder compares hidden states; where the model is too large to run once per candidate, it refuses.
    const bert = loadHfModel(fixturePath('bert-tiny'));
    const encoder = await planPrune(bert.graph, { model: bert, targetParams: 0.6, evals: 20, attentionImportance: 'ablation', calibration: { samples: 2, length: 8 } });
    expect(encoder.importanceDetails?.attention).toMatchObject({ method: 'hidden' });
  });
});

describe('random importance', () => {
  it('is seeded: the same seed keeps the same units in every layer, another seed others', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const plan = async (seed: number) => (await planPrune(model.graph, { model, importance: 'random', targetParams: 0.5, search: 'uniform', seed })).plan;
    expect(await plan(3)).toEqual(await plan(3));
    expect((await plan(3)).layers.map((l) => l.keptNeurons)).not.toEqual((await plan(4)).layers.map((l) => l.keptNeurons));
  });
});
