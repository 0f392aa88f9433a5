/**
 * Encoders are calibrated and ranked as decoders are: a fill-mask export samples its own
 * calibration sequences from its masked-LM head (Gibbs-style), and attention units are ranked
 * by the change they make to the final hidden states (no next-token distribution to compare).
 */
import { loadHfModel } from '@zerolm/adapters';
import { ModelRunner, loadTokenizer } from '@zerolm/runtime';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { join } from 'path';
import { exportPrunedModel } from '@zerolm/export';
import { calibrate, calibrationSequences, clearCalibrationCache, GIBBS_DEFAULTS, hasMaskedLmHead, klAttentionOrders, prepareRanking, prune, refitOverrides } from '../src';
import { planFor, tempRoot } from '../../export/test/export-helpers';
import { describeShared, sharedPaths } from '../../adapters/test/shared-data';

const root = tempRoot('encoders');
beforeAll(() => ensureFixtures(['bert-mlm-tiny', 'bert-tiny']));
afterAll(() => {
  root.remove();
  clearCalibrationCache();
});

describe('masked-LM sampling', () => {
  it('a fill-mask encoder samples its own sequences: [CLS] ... [SEP], no mask or padding left, seeded per chain', async () => {
    const model = loadHfModel(fixturePath('bert-mlm-tiny'));
    expect(hasMaskedLmHead(model)).toBe(true);
    expect(hasMaskedLmHead(loadHfModel(fixturePath('bert-tiny')))).toBe(false);
    const seqs = await calibrationSequences(model, { samples: 6, length: 20, seed: 2 });
    expect(seqs).toMatchObject({ source: 'self-generated', sampler: 'masked-lm', mask: 4, samples: 6, length: 20 });
    expect(seqs.description).toMatch(/sampled from the model's masked-LM head \(Gibbs-style: from \[2\] \[MASK\] x 18 \[3\], 9 sweeps redrawing 3 masked positions per run, 54 runs, temperature 1, top-100 in the second half\); no text is read/);
    for (let s = 0; s < 6; s++) {
      const row = Array.from(seqs.tokens.slice(s * 20, (s + 1) * 20));
      expect(row[0]).toBe(2);
      expect(row[19]).toBe(3);
      for (const id of row.slice(1, 19)) {
        expect(id).not.toBe(4);
        expect(id).not.toBe(0);
        expect(id).toBeLessThan(seqs.vocabulary);
      }
    }
    // Sequence s depends only on (seed, s): the first 3 of 6 equal a run of 3; another seed differs.
    const three = await calibrationSequences(model, { samples: 3, length: 20, seed: 2 });
    expect(Array.from(three.tokens)).toEqual(Array.from(seqs.tokens.slice(0, 60)));
    const other = await calibrationSequences(model, { samples: 3, length: 20, seed: 3 });
    expect(Array.from(other.tokens)).not.toEqual(Array.from(three.tokens));
    expect(GIBBS_DEFAULTS).toEqual({ sweeps: 8, maskFraction: 0.15, topK: 100, temperature: 1 });
  });

  it('is the default calibration of a fill-mask export, recorded in plan.json', async () => {
    const result = await prune(fixturePath('bert-mlm-tiny'), { targetParams: 0.6, planOnly: true, calibration: { samples: 4, length: 16 } });
    expect(result.planFile.calibration).toMatchObject({ source: 'self-generated', sampler: 'masked-lm', samples: 4, length: 16 });
    expect(result.planFile.calibration?.fallback).toBeUndefined();
    expect(result.planFile.importance).toMatchObject({ rule: 'self-generated', attention: { method: 'hidden' } });
  });
});

describe('attention ranking of encoders by the change of the final hidden states', () => {
  it('bert-tiny: the first unit removed is the one whose removal (with the refit) moves the hidden states least', async () => {
    const name = 'bert-tiny';
    const model = loadHfModel(fixturePath(name));
    const calibration = await calibrate(model, { samples: 4, length: 12, seed: 1 });
    const { orders, passes } = await klAttentionOrders(model, calibration, { device: 'cpu' });
    expect(passes).toBe(2 * (4 + 3 + 2));
    // Each single-unit removal of layer 0, exported with its refit, against the full model on the
    // calibration tokens: mean squared change of last_hidden_state per token.
    const { tokens, samples, length } = calibration.sequences;
    const batch = { batch: samples, seqLen: length, ids: BigInt64Array.from(tokens, BigInt), mask: new BigInt64Array(tokens.length).fill(1n) };
    const full = await ModelRunner.open(model, 'cpu');
    const reference = (await full.run(batch)).data;
    await full.release();
    const change: number[] = [];
    for (let g = 0; g < 4; g++) {
      const plan = planFor(model.graph, { 0: { groups: [0, 1, 2, 3].filter((x) => x !== g) } });
      const out = join(root.dir, `${name}-without-${g}`);
      await exportPrunedModel(fixturePath(name), plan, out, { overrides: await refitOverrides(model, plan, calibration), verify: false });
      const runner = await ModelRunner.open(loadHfModel(out), 'cpu');
      const hidden = (await runner.run(batch)).data;
      await runner.release();
      let sum = 0;
      for (let i = 0; i < hidden.length; i++) sum += (hidden[i]! - reference[i]!) ** 2;
      change.push(sum / (samples * length));
    }
    const least = change.indexOf(Math.min(...change));
    expect(orders[0]![0]).toBe(least);
  });

  it('ranks the planted head of bert-mlm-tiny last, on its own samples', async () => {
    const model = loadHfModel(fixturePath('bert-mlm-tiny'));
    const { ranking, details } = await prepareRanking(model.graph, { model, seed: 0, calibration: { samples: 8, length: 16 } });
    expect(details?.attention?.method).toBe('hidden');
    expect(details?.calibration?.sampler).toBe('masked-lm');
    expect(ranking.groups[0]![3]).toBe(2);
    expect(new Set(ranking.neurons[1]!.slice(-2))).toEqual(new Set([5, 40]));
  });
});

describeShared(
  'masked-LM sampling on the trained encoder',
  () => {
    it('kjv-bert-tiny speaks: its samples are mostly words of the text, not [UNK] or specials', async () => {
      const dir = join(sharedPaths.modelsDir, 'kjv-bert-tiny');
      const model = loadHfModel(dir);
      const seqs = await calibrationSequences(model, { samples: 8, length: 32, seed: 0 });
      const tokenizer = await loadTokenizer(dir);
      const special = new Set(tokenizer.specialTokenIds);
      let words = 0;
      for (let s = 0; s < 8; s++) for (let t = 1; t < 31; t++) if (!special.has(seqs.tokens[s * 32 + t]!)) words++;
      expect(words / (8 * 30)).toBeGreaterThan(0.9);
      // The most common word of the text, "the" (as the tokenizer spells it), is among the samples.
      expect(Array.from(seqs.tokens)).toContain(tokenizer.encode('the', false)[0]);
    });
  },
  [join(sharedPaths.modelsDir, 'kjv-bert-tiny')],
);
