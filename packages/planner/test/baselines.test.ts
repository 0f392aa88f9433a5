/**
 * The published baselines in the importance registry: Wanda-sp and FLAP (WIFV) as their code
 * defines them, computed from the calibration moments; FLAP's scores compare across layers and the
 * global search keeps the best units of the whole model by them.
 */
import { loadHfModel, type HfModel } from '@zerolm/adapters';
import { countParams, prunedGraph } from '@zerolm/core';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { calibrate, clearCalibrationCache, listImportances, planFromCounts, planPrune, prepareRanking, type Calibration } from '../src';
import { groupRows, outputProjection } from '../src/calibration/ablation';
import { PLANTED, plantedUnits } from './search-helpers';

const CALIBRATION = { samples: 12, length: 24 };
beforeAll(() => ensureFixtures([...PLANTED, 'llama-tiny', 'gpt2-tiny']));
afterAll(() => clearCalibrationCache());

/** Rows (input channels) of `o` or `down` with their E[x^2] and E[x]. */
function channels(model: HfModel, calibration: Calibration, layer: number, kind: 'heads' | 'ffn') {
  if (kind === 'heads') {
    const o = outputProjection(model, layer);
    return { weights: o.weights, cols: o.cols, moments: calibration.layers[layer]!.attention };
  }
  const down = model.graph.layers[layer]!.ffn.matrices.find((m) => m.role === 'down')!;
  return { weights: Float64Array.from(down.values()), cols: down.cols, moments: calibration.layers[layer]!.ffn };
}

describe('published baselines', () => {
  it('are registered beside the default', () => {
    expect(listImportances().map((r) => r.name)).toEqual(expect.arrayContaining(['self-generated', 'wanda-sp', 'flap']));
  });

  it.each(PLANTED)('wanda-sp and flap rank the planted all-zero units of %s last', async (name) => {
    const model = loadHfModel(fixturePath(name));
    for (const importance of ['wanda-sp', 'flap']) {
      const { ranking } = await prepareRanking(model.graph, { model, importance, seed: 0, calibration: CALIBRATION });
      model.graph.layers.forEach((layer, l) => {
        const { groups, neurons } = plantedUnits(name, l, layer);
        expect(new Set(ranking.groups[l]!.slice(layer.attention.kvHeads - groups.length))).toEqual(new Set(groups));
        expect(new Set(ranking.neurons[l]!.slice(layer.ffn.width - neurons.length))).toEqual(new Set(neurons));
      });
    }
  });

  it.each(['llama-tiny', 'gpt2-tiny'])('%s: wanda-sp scores mean |W| times the RMS input per channel, summed over the unit; flap standardizes fluctuation x squared norm per layer', async (name) => {
    const model = loadHfModel(fixturePath(name));
    const calibration = await calibrate(model, { ...CALIBRATION, seed: 0 });
    const wanda = await prepareRanking(model.graph, { model, importance: 'wanda-sp', seed: 0, calibration: CALIBRATION });
    const flap = await prepareRanking(model.graph, { model, importance: 'flap', seed: 0, calibration: CALIBRATION });
    expect(wanda.details?.calibration).toMatchObject({ samples: 12, length: 24, source: 'self-generated' });
    expect(wanda.ranking.scores).toBeUndefined();
    expect(flap.ranking.scores).toBeDefined();
    model.graph.layers.forEach((layer, l) => {
      for (const kind of ['heads', 'ffn'] as const) {
        const { weights, cols, moments } = channels(model, calibration, l, kind);
        const n = moments.dim;
        const wandaChannel = (j: number) => {
          let sum = 0;
          for (let c = 0; c < cols; c++) sum += Math.abs(weights[j * cols + c]!);
          return (sum / cols) * Math.sqrt(moments.second[j * n + j]!);
        };
        const flapChannel = (j: number) => {
          let norm = 0;
          for (let c = 0; c < cols; c++) norm += weights[j * cols + c]! ** 2;
          const m = (moments.second[j * n + j]! - moments.mean[j]! ** 2) * norm;
          return kind === 'heads' ? m * m : m;
        };
        const units = kind === 'heads' ? Array.from({ length: layer.attention.kvHeads }, (_, g) => groupRows(layer, g)) : Array.from({ length: n }, (_, j) => [j]);
        const wandaScores = units.map((rows) => rows.reduce((s, j) => s + wandaChannel(j), 0));
        const order = (scores: number[]) => scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
        expect(kind === 'heads' ? wanda.ranking.groups[l] : wanda.ranking.neurons[l]).toEqual(order(wandaScores));
        // FLAP: standardized over the layer's channels (unbiased std), a unit the mean of its channels.
        const metric = Array.from({ length: n }, (_, j) => flapChannel(j));
        const mean = metric.reduce((a, b) => a + b, 0) / n;
        const std = Math.sqrt(metric.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
        const flapScores = units.map((rows) => rows.reduce((s, j) => s + (metric[j]! - mean) / std, 0) / rows.length);
        const got = kind === 'heads' ? flap.ranking.scores!.groups[l]! : flap.ranking.scores!.neurons[l]!;
        got.forEach((v, u) => expect(v).toBeCloseTo(flapScores[u]!, 9));
      }
    });
  });

  it('the global search keeps the longest prefix of all units by FLAP score that fits the budget', async () => {
    const model = loadHfModel(fixturePath('gpt2-tiny'));
    const result = await planPrune(model.graph, { model, importance: 'flap', search: 'global', targetParams: 0.6, calibration: CALIBRATION });
    expect(result.search.method).toBe('global');
    expect(result.evaluations).toBe(1);
    const full = countParams(model.graph).modules;
    expect(result.params.after).toBeLessThanOrEqual(0.6 * full);
    // The same plan from the definition: units best first, each layer keeping what it has taken
    // (at least one group and 8 neurons, neurons in multiples of 8), parameters counted on the
    // pruned module graph itself.
    const { groups, neurons } = result.ranking.scores!;
    const units = model.graph.layers.flatMap((_, l) => [...groups[l]!.map((score) => ({ score, l, kind: 'groups' as const })), ...neurons[l]!.map((score) => ({ score, l, kind: 'neurons' as const }))]);
    units.sort((a, b) => b.score - a.score);
    const taken = model.graph.layers.map(() => ({ groups: 0, neurons: 0 }));
    const countsAt = () =>
      model.graph.layers.map((layer, l) => {
        const t = taken[l]!;
        const n = t.neurons >= layer.ffn.width ? layer.ffn.width : Math.max(8, Math.floor(t.neurons / 8) * 8);
        return { groups: Math.max(1, t.groups), neurons: n, dropped: false };
      });
    let best = countsAt();
    for (const unit of units) {
      taken[unit.l]![unit.kind]++;
      const counts = countsAt();
      if (countParams(prunedGraph(model.graph, planFromCounts(result.ranking, counts))).modules > 0.6 * full) break;
      best = counts;
    }
    expect(result.plan).toEqual(planFromCounts(result.ranking, best));
    // Widths differ between layers: the structure is adaptive.
    expect(new Set(result.layers.map((l) => `${l.groups}/${l.neurons}`)).size).toBeGreaterThan(1);
  });

  it('the global search needs scores that compare across layers', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    await expect(planPrune(model.graph, { model, importance: 'wanda-sp', search: 'global', targetParams: 0.6, calibration: CALIBRATION })).rejects.toThrow(
      /search "global" ranks units across layers, so it needs an importance whose scores compare across layers \(flap\); "wanda-sp" ranks within each layer only/,
    );
  });
});
