import { graphCapacity, prunedGraph, Rng, scoreReport, type ModuleGraph } from '@zerolm/core';
import {
  allowedCounts,
  fillTable,
  gatherTable,
  maskLayout,
  sumOfSquaresTable,
  openOnnxMaskScorer,
  openScoring,
  planFromCounts,
  rankUnits,
  scoreMasksTs,
  typescriptMaskScorer,
  writeCountsMask,
  writePlanMask,
  type LayerCounts,
} from '../src';
import { fixtureGraph, mixedMixerGraph, PLANTED, randomPlan, relativeError, smallGqaSpecGraph } from './search-helpers';

const ALPHA = 0.3;

function graphsUnderTest(): [string, ModuleGraph][] {
  return [...PLANTED.map((name): [string, ModuleGraph] => [name, fixtureGraph(name)]), ['small-gqa spec', smallGqaSpecGraph()], ['flexibert mixers', mixedMixerGraph()]];
}

function randomCounts(graph: ModuleGraph, rng: Rng): LayerCounts[] {
  return graph.layers.map((layer) => ({ groups: 1 + rng.int(layer.attention.kvHeads), neurons: 1 + rng.int(layer.ffn.width), dropped: false }));
}

describe.each(['msv', 'nuclear-bound'])('measures from ||W||_F^2 (%s): TypeScript reference, onnxruntime and tables', (MEASURE) => {
  it.each(graphsUnderTest())(`${MEASURE}, %s: masked scores equal scoreReport of the pruned graph (TS) and onnxruntime agrees within 1e-4`, async (_name, graph) => {
    const layout = maskLayout(graph);
    const rng = new Rng(`masks/${graph.name}`);
    const plans = Array.from({ length: 12 }, (_, i) => randomPlan(graph, rng, { drop: i % 3 === 0 }));
    const masks = new Float32Array(plans.length * layout.units);
    plans.forEach((plan, row) => writePlanMask(layout, plan.layers, masks, row));
    const ts = scoreMasksTs(layout, masks, plans.length, ALPHA, MEASURE);
    const scorer = await openOnnxMaskScorer(layout, { alpha: ALPHA, measure: MEASURE });
    try {
      expect(['cpu', 'cuda']).toContain(scorer.provider);
      const ort = await scorer.score(masks, plans.length);
      plans.forEach((plan, b) => {
        const pruned = prunedGraph(graph, plan);
        const linear = scoreReport(pruned, { measure: MEASURE, alpha: ALPHA }).score;
        const log = scoreReport(pruned, { measure: MEASURE, alpha: ALPHA, variant: 'log' }).score;
        expect(relativeError(ts.linear[b]!, linear)).toBeLessThan(1e-12);
        expect(relativeError(ts.log[b]!, log)).toBeLessThan(1e-12);
        expect(relativeError(ort.linear[b]!, linear)).toBeLessThan(1e-4);
        expect(relativeError(ort.log[b]!, log)).toBeLessThan(1e-4);
      });
      for (let i = 0; i < ts.modules.length; i++) {
        expect(Math.abs(ort.modules[i]! - ts.modules[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1e-12, Math.abs(ts.modules[i]!)));
      }
    } finally {
      await scorer.close();
    }
  });

  it.each(graphsUnderTest())(`${MEASURE}, %s: sum-of-squares table, gathered table and the onnxruntime-filled table match graphCapacity of pruned graphs`, async (_name, graph) => {
    const ranking = rankUnits(graph);
    const allowed = allowedCounts(graph, ['heads', 'ffn'], 4);
    const exact = sumOfSquaresTable(graph, ranking, MEASURE);
    const gathered = gatherTable(graph, ranking, (await import('@zerolm/core')).getMeasure(MEASURE));
    const layout = maskLayout(graph);
    const scorer = await openOnnxMaskScorer(layout, { alpha: ALPHA, measure: MEASURE });
    const { table: filled, rows } = await fillTable(scorer, ranking, allowed, { batchSize: 5 });
    await scorer.close();
    expect(rows).toBe(Math.max(...allowed.map((a) => Math.max(a.groups.length, a.neurons.length))));
    const { table: filledTs } = await fillTable(typescriptMaskScorer(layout, ALPHA, MEASURE), ranking, allowed);
    const rng = new Rng('tables');
    for (let trial = 0; trial < 6; trial++) {
      const counts = allowed.map((a) => ({ groups: a.groups[rng.int(a.groups.length)]!, neurons: a.neurons[rng.int(a.neurons.length)]!, dropped: false }));
      const capacity = graphCapacity(prunedGraph(graph, planFromCounts(ranking, counts)), { measure: MEASURE });
      counts.forEach((c, l) => {
        const a = capacity.layers[l]!.attention.capacity;
        const f = capacity.layers[l]!.ffn.capacity;
        expect(relativeError(exact.attention(l, c.groups), a)).toBeLessThan(1e-12);
        expect(relativeError(exact.ffn(l, c.neurons), f)).toBeLessThan(1e-12);
        expect(relativeError(gathered.attention(l, c.groups), a)).toBeLessThan(1e-12);
        expect(relativeError(gathered.ffn(l, c.neurons), f)).toBeLessThan(1e-12);
        expect(relativeError(filledTs.attention(l, c.groups), a)).toBeLessThan(1e-12);
        expect(relativeError(filled.attention(l, c.groups), a)).toBeLessThan(1e-4);
        expect(relativeError(filled.ffn(l, c.neurons), f)).toBeLessThan(1e-4);
      });
    }
    expect(() => filled.ffn(0, 3)).toThrow(/no capacity scored for layer 0 keeping 3 neurons/);
  });

});

describe('mask scoring: TypeScript reference and onnxruntime', () => {
  it('rejects a mask buffer too small for the batch', async () => {
    const layout = maskLayout(fixtureGraph('bert-planted'));
    expect(() => scoreMasksTs(layout, new Float32Array(layout.units), 2, 0.5)).toThrow(/too few for 2 rows/);
  });
});

describe('capacity tables', () => {
  it.each(['nuclear', 'erank'])('the gathered %s table equals graphCapacity of pruned graphs (per layer and kept count)', async (measureName) => {
    const { getMeasure } = await import('@zerolm/core');
    const graph = fixtureGraph('llama-planted');
    const ranking = rankUnits(graph);
    const table = gatherTable(graph, ranking, getMeasure(measureName));
    const rng = new Rng(measureName);
    for (let trial = 0; trial < 3; trial++) {
      const counts = randomCounts(graph, rng);
      const capacity = graphCapacity(prunedGraph(graph, planFromCounts(ranking, counts)), { measure: measureName });
      counts.forEach((c, l) => {
        expect(relativeError(table.attention(l, c.groups), capacity.layers[l]!.attention.capacity)).toBeLessThan(1e-10);
        expect(relativeError(table.ffn(l, c.neurons), capacity.layers[l]!.ffn.capacity)).toBeLessThan(1e-10);
      });
    }
  });

  it('masks of kept counts are the top-k units of the ranking', () => {
    const graph = fixtureGraph('llama-planted');
    const ranking = rankUnits(graph);
    const layout = maskLayout(graph);
    const counts = randomCounts(graph, new Rng('counts-mask'));
    const a = new Float32Array(layout.units);
    const b = new Float32Array(layout.units);
    writeCountsMask(layout, ranking, counts, a, 0);
    writePlanMask(layout, planFromCounts(ranking, counts).layers, b, 0);
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

describe('openScoring: which backend scores, and why', () => {
  const graph = () => fixtureGraph('bert-planted');
  const allowed = () => allowedCounts(graph(), ['heads', 'ffn'], 8);

  it('msv with auto runs on onnxruntime (CUDA when it starts, else CPU with the reason)', async () => {
    const setup = await openScoring(graph(), rankUnits(graph()), allowed(), { alpha: 0.5 });
    expect(['cpu', 'cuda']).toContain(setup.provider);
    if (setup.provider === 'cpu') expect(setup.reason).toMatch(/\S/);
    expect(setup.rows).toBe(12);
  });

  it('spectral measures are scored in TypeScript, and refuse the onnxruntime backend', async () => {
    const setup = await openScoring(graph(), rankUnits(graph()), allowed(), { alpha: 0.5, measure: 'nuclear' });
    expect(setup.provider).toBe('typescript');
    expect(setup.reason).toMatch(/"nuclear" needs singular values/);
    await expect(openScoring(graph(), rankUnits(graph()), allowed(), { alpha: 0.5, measure: 'srank', backend: 'onnxruntime' })).rejects.toThrow(
      /cannot score on onnxruntime: measure "srank" needs singular values/,
    );
  });

  it('the typescript backend says it was asked for; unknown backends and measures are errors', async () => {
    const setup = await openScoring(graph(), rankUnits(graph()), allowed(), { alpha: 0.5, backend: 'typescript' });
    expect(setup).toMatchObject({ provider: 'typescript', reason: 'typescript backend requested', rows: 0 });
    await expect(openScoring(graph(), rankUnits(graph()), allowed(), { alpha: 0.5, backend: 'webgpu' as never })).rejects.toThrow(/unknown scoring backend "webgpu"/);
    await expect(openScoring(graph(), rankUnits(graph()), allowed(), { alpha: 0.5, measure: 'frobenius' })).rejects.toThrow(/unknown capacity measure "frobenius"/);
  });
});
