import {
  ALPHA_GRID,
  evaluateStrategy,
  getAlphaStrategy,
  kendallTauB,
  makeSplits,
  middleOfBestPlateau,
  Rng,
} from '../src';

function syntheticSpace(n: number, seed: number, trueAlpha: number, noise: number) {
  const rng = new Rng(seed);
  const attention = Float64Array.from({ length: n }, () => 1 + rng.uniform() * 4);
  const ffn = Float64Array.from({ length: n }, () => 2 + rng.uniform() * 8);
  const params = Float64Array.from({ length: n }, (_, i) => 1000 * (attention[i] as number) + 10 * rng.uniform());
  const groundTruth = Float64Array.from(
    { length: n },
    (_, i) => trueAlpha * (attention[i] as number) + (1 - trueAlpha) * (ffn[i] as number) + noise * rng.normal(),
  );
  return { attention, ffn, params, groundTruth };
}

describe('alpha strategies', () => {
  it('takes the middle of the widest plateau of maxima', () => {
    const values = ALPHA_GRID.map((a) => (a >= 0.2 && a <= 0.4 ? 1 : a === 0.9 ? 1 : 0));
    expect(middleOfBestPlateau(values)).toBe(0.3);
    expect(middleOfBestPlateau([0, 2, 2, 1], [0, 0.1, 0.2, 0.3])).toBe(0.1);
  });

  it('sample: recovers the alpha that generated a noise-free ground truth', () => {
    const space = syntheticSpace(200, 1, 0.3, 0);
    const splits = makeSplits(200, 50, 5, 7);
    const result = evaluateStrategy(getAlphaStrategy('sample'), space, splits);
    // Kendall is exactly 1 on the sample at the true alpha; the chosen point lies on that plateau.
    for (const alpha of result.alphas) expect(Math.abs(alpha - 0.3)).toBeLessThanOrEqual(0.05);
    expect(result.kendall.mean).toBeGreaterThan(0.95);
  });

  it('sample: reports correlations on held-out architectures only, reproducibly for a seed', () => {
    const space = syntheticSpace(120, 2, 0.6, 0.5);
    const a = evaluateStrategy(getAlphaStrategy('sample'), space, makeSplits(120, 30, 4, 11));
    const b = evaluateStrategy(getAlphaStrategy('sample'), space, makeSplits(120, 30, 4, 11));
    const c = evaluateStrategy(getAlphaStrategy('sample'), space, makeSplits(120, 30, 4, 12));
    expect(a).toEqual(b);
    expect(a.alphas).not.toEqual(c.alphas);
    for (const split of makeSplits(120, 30, 4, 11)) {
      expect(new Set([...split.sample, ...split.heldOut]).size).toBe(120);
      expect(split.heldOut.length).toBe(90);
    }
  });

  it.each(['heuristic', 'balance'])('%s: never depends on the ground truth (same alpha when it is shuffled)', (name) => {
    const space = syntheticSpace(150, 3, 0.4, 0.3);
    const shuffled = new Rng(99).permutation(150).map((i) => space.groundTruth[i] as number);
    const splits = makeSplits(150, 50, 3, 5);
    const original = evaluateStrategy(getAlphaStrategy(name), space, splits);
    const permuted = evaluateStrategy(getAlphaStrategy(name), { ...space, groundTruth: shuffled }, splits);
    expect(permuted.alphas).toEqual(original.alphas);
    expect(permuted.spearman.mean).not.toBeCloseTo(original.spearman.mean, 3);
  });

  it('heuristic: picks the alpha whose score orders the space most like the parameter count', () => {
    // Here params follow the Attention component, so the size-agreement rule must lean to Attention.
    const space = syntheticSpace(150, 4, 0.5, 0);
    const context = { attention: space.attention, ffn: space.ffn, params: space.params, sample: [] };
    const alpha = getAlphaStrategy('heuristic').choose(context);
    const agreement = (x: number) => kendallTauB(space.attention.map((a, i) => x * a + (1 - x) * (space.ffn[i] as number)), space.params);
    expect(alpha).toBeGreaterThan(0.9);
    for (const other of ALPHA_GRID) expect(agreement(alpha)).toBeGreaterThanOrEqual(agreement(other) - 1e-12);
  });

  it('balance: makes the score equally rank-correlated with both components', () => {
    const space = syntheticSpace(150, 4, 0.5, 0);
    const alpha = getAlphaStrategy('balance').choose({ attention: space.attention, ffn: space.ffn, params: space.params, sample: [] });
    const gapAt = (x: number) => {
      const s = space.attention.map((a, i) => x * a + (1 - x) * (space.ffn[i] as number));
      return Math.abs(kendallTauB(s, space.attention) - kendallTauB(s, space.ffn));
    };
    for (const other of ALPHA_GRID) expect(gapAt(alpha)).toBeLessThanOrEqual(gapAt(other) + 1e-12);
  });

  it('fixed: returns the given alpha', () => {
    expect(getAlphaStrategy('fixed').choose({ attention: [1], ffn: [1], params: [1], sample: [], alpha: 0.25 })).toBe(0.25);
  });

  it('rejects impossible splits with clear errors', () => {
    expect(() => makeSplits(50, 50, 1, 0)).toThrow(/smaller than the number of architectures/);
    expect(() => makeSplits(50, 1, 1, 0)).toThrow(/sample size/);
    expect(() => getAlphaStrategy('nope')).toThrow(/known: sample, heuristic, balance, fixed/);
  });
});
