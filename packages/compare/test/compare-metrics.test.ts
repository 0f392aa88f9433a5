/**
 * The pieces of `compare` that need no model: fidelity measures against direct computations,
 * next-token windows, latency statistics and the bundled text.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '@zerolm/core';
import {
  BUNDLED_TEXT,
  cosine,
  EmbeddingAgreement,
  encoderSequences,
  measureLatencies,
  NextTokenAgreement,
  PerplexityAccumulator,
  quantile,
  readSampleText,
  summarizeLogits,
  TokenWindows,
} from '../src';

/** softmax of one row in float64, written out directly (the test's own reference computation). */
function softmax(row: ArrayLike<number>): number[] {
  const values = Array.from(row);
  const max = Math.max(...values);
  const e = values.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

function randomLogits(rng: Rng, positions: number, vocab: number, scale: number): Float32Array {
  const out = new Float32Array(positions * vocab);
  for (let i = 0; i < out.length; i++) out[i] = scale * rng.normal();
  return out;
}

describe('next-token measures', () => {
  it('uniform logits have perplexity equal to the vocabulary size', () => {
    const vocab = 37;
    const logits = new Float32Array(5 * vocab).fill(2.5);
    const acc = new PerplexityAccumulator();
    acc.add(logits, summarizeLogits(logits, 5, vocab), [0, 5, 9, 36, 1]);
    expect(acc.perplexity).toBeCloseTo(vocab, 10);
    expect(acc.positions).toBe(5);
  });

  it('perplexity, KL and top-1 agreement match a direct computation', () => {
    const rng = new Rng(7);
    const positions = 6;
    const vocab = 11;
    const reference = randomLogits(rng, positions, vocab, 3);
    const variant = reference.map((v) => v + 0.8 * rng.normal());
    const targets = Array.from({ length: positions }, () => rng.int(vocab));
    const referenceSummary = summarizeLogits(reference, positions, vocab, true);
    const variantSummary = summarizeLogits(variant, positions, vocab);

    const perplexity = new PerplexityAccumulator();
    perplexity.add(variant, variantSummary, targets);
    const agreement = new NextTokenAgreement();
    agreement.add(reference, referenceSummary, variant, variantSummary);

    let nll = 0;
    let kl = 0;
    let agree = 0;
    for (let t = 0; t < positions; t++) {
      const p = softmax(reference.subarray(t * vocab, (t + 1) * vocab));
      const q = softmax(variant.subarray(t * vocab, (t + 1) * vocab));
      nll -= Math.log(q[targets[t]!]!);
      kl += p.reduce((sum, pi, i) => sum + pi * Math.log(pi / q[i]!), 0);
      if (p.indexOf(Math.max(...p)) === q.indexOf(Math.max(...q))) agree++;
    }
    expect(perplexity.perplexity).toBeCloseTo(Math.exp(nll / positions), 8);
    expect(agreement.meanKl).toBeCloseTo(kl / positions, 6);
    expect(agreement.top1Agreement).toBe(agree / positions);
    expect(agreement.meanKl).toBeGreaterThan(0);
  });

  it('KL of two-token distributions has its closed form, and is exactly 0 for equal logits', () => {
    // p = (1/4, 3/4), q = (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2)
    const reference = Float32Array.from([0, Math.log(3)]);
    const variant = Float32Array.from([5, 5]);
    const agreement = new NextTokenAgreement();
    agreement.add(reference, summarizeLogits(reference, 1, 2, true), variant, summarizeLogits(variant, 1, 2));
    // float32 logits and probabilities: agreement to ~1e-7
    expect(agreement.meanKl).toBeCloseTo(0.25 * Math.log(0.5) + 0.75 * Math.log(1.5), 6);
    expect(agreement.top1Agreement).toBe(0); // argmax 1 against argmax 0 (first of a tie)

    const same = new NextTokenAgreement();
    const logits = randomLogits(new Rng(3), 4, 9, 5);
    same.add(logits, summarizeLogits(logits, 4, 9, true), logits, summarizeLogits(logits, 4, 9));
    expect(same.meanKl).toBe(0);
    expect(same.top1Agreement).toBe(1);
  });

  it('refuses mismatched shapes, a missing reference softmax and out-of-vocabulary targets', () => {
    const a = new Float32Array(6);
    const agreement = new NextTokenAgreement();
    expect(() => agreement.add(a, summarizeLogits(a, 2, 3), a, summarizeLogits(a, 2, 3))).toThrow(/must include its probabilities/);
    expect(() => agreement.add(a, summarizeLogits(a, 2, 3, true), a, summarizeLogits(a, 3, 2))).toThrow(/3 positions over 2 tokens, the reference 2 over 3/);
    expect(() => new PerplexityAccumulator().add(a, summarizeLogits(a, 2, 3), [0, 3])).toThrow(/token id 3 is outside the model's vocabulary of 3/);
    expect(() => summarizeLogits(a, 4, 2)).toThrow(/expected 4 x 2/);
  });
});

describe('embedding measures', () => {
  it('cosine of parallel, opposite, orthogonal and zero rows', () => {
    expect(cosine([1, 2, 3], 0, [2, 4, 6], 0, 3)).toBeCloseTo(1, 12);
    expect(cosine([1, 2, 3], 0, [-1, -2, -3], 0, 3)).toBeCloseTo(-1, 12);
    expect(cosine([9, 1, 0], 1, [5, 5, 0, 7], 2, 2)).toBe(0); // offsets pick (1, 0) and (0, 7)
    expect(cosine([0, 0], 0, [0, 0], 0, 2)).toBe(1);
    expect(cosine([0, 0], 0, [1, 0], 0, 2)).toBe(0);
  });

  it('averages token cosines over real tokens and pools sentences over them only', () => {
    const seqLen = 3;
    const hidden = 2;
    // Sequence 0 has 2 tokens, sequence 1 has 3; padding rows hold values that must not count.
    const reference = Float32Array.from([1, 0, 0, 1, 99, 99, 1, 1, 2, 0, 0, 3]);
    const variant = Float32Array.from([1, 0, 1, 0, -7, 5, 1, 1, 2, 0, 0, 3]);
    const acc = new EmbeddingAgreement();
    acc.add(reference, variant, [2, 3], seqLen, hidden);
    // tokens: cos 1, cos 0, then 1, 1, 1
    expect(acc.tokenCosine).toBeCloseTo(4 / 5, 12);
    expect(acc.tokens).toBe(5);
    // sentence 0: pooled (1, 1) against (2, 0): cos = 1/sqrt(2); sentence 1: identical
    expect(acc.sentenceCosine).toBeCloseTo((Math.SQRT1_2 + 1) / 2, 12);
    expect(acc.sentences).toBe(2);
  });
});

describe('text windows', () => {
  const lines = [[2, 10, 11, 3], [2, 12, 13, 14, 3], [2, 15, 3]];

  it('cuts the concatenated stream into seqLen inputs predicting the next seqLen tokens, dropping the partial window', () => {
    // 12 tokens [2 10 11 3 2 12 13 14 3 2 15 3]: windows start at 0, 3 and 6 (last target: index 9);
    // the window at 9 would need a target at index 12, so tokens 10 and 11 are never predicted.
    const windows = new TokenWindows(lines, 3);
    expect(windows.count).toBe(3);
    expect(windows.positions).toBe(9);
    expect(Array.from(windows.inputs(0))).toEqual([2, 10, 11]);
    expect(Array.from(windows.targets(0))).toEqual([10, 11, 3]);
    expect(Array.from(windows.inputs(1))).toEqual([3, 2, 12]);
    expect(Array.from(windows.inputs(2))).toEqual([13, 14, 3]);
    expect(Array.from(windows.targets(2))).toEqual([14, 3, 2]);
    // 12 tokens with seqLen 11: one window, scored on tokens 1..11
    expect(new TokenWindows(lines, 11).count).toBe(1);
    expect(new TokenWindows(lines, 3, 2).count).toBe(2);
    expect(() => new TokenWindows(lines, 12)).toThrow(/the text holds 12 tokens: one window of --seq-len 12 needs 13/);
  });

  it('gives encoders one sequence per line, cut to seqLen', () => {
    expect(encoderSequences(lines, 4).map((s) => Array.from(s))).toEqual([[2, 10, 11, 3], [2, 12, 13, 14], [2, 15, 3]]);
    expect(encoderSequences(lines, 4, 1)).toHaveLength(1);
  });
});

describe('latency statistics', () => {
  it('interpolates quantiles linearly between order statistics', () => {
    expect(quantile([1, 2, 3, 4], 0.9)).toBeCloseTo(3.7, 12);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([5, 7, 9], 0.5)).toBe(7);
    expect(quantile([4], 0.9)).toBe(4);
  });

  it('warms every model up, then times the runs round robin', async () => {
    const calls: string[] = [];
    const model = (name: string) => async () => {
      calls.push(name);
      await new Promise((resolve) => setTimeout(resolve, 2));
    };
    const stats = await measureLatencies([model('a'), model('b')], 3, 2);
    expect(calls.join('')).toBe('aabb' + 'ababab');
    expect(stats).toHaveLength(2);
    for (const s of stats) {
      expect(s).toMatchObject({ runs: 3, warmup: 2 });
      expect(s.minMs).toBeGreaterThan(1);
      expect(s.p90Ms).toBeGreaterThanOrEqual(s.medianMs);
    }
  });
});

describe('bundled text', () => {
  it('ships a few thousand words inside the package, with its source noted beside it', () => {
    const packageDir = path.resolve(__dirname, '..');
    expect(path.relative(packageDir, BUNDLED_TEXT)).toBe(path.join('assets', 'sample-text.txt'));
    const text = readSampleText();
    const words = text.lines.join(' ').split(/\s+/).length;
    expect(words).toBeGreaterThan(2000);
    expect(words).toBeLessThan(10000);
    expect(fs.readFileSync(path.join(packageDir, 'assets/README.md'), 'utf8')).toMatch(/written for this project/);
    expect(JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8')).files).toContain('assets');
  });
});
