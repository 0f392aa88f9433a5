import { averageRanks, kendallTauB, pearson, spearman } from '../src';

describe('rank statistics', () => {
  // Reference values from scipy.stats.spearmanr / kendalltau (tau-b) on the same vectors.
  const x = [3.1, 2.0, 2.0, 5.5, 4.2, 4.2, 4.2, 0.7, 9.0, 6.1];
  const y = [10, 12, 11, 30, 25, 22, 25, 5, 28, 31];

  it('matches scipy on a vector with ties', () => {
    expect(spearman(x, y)).toBeCloseTo(0.9136498769008703, 14);
    expect(kendallTauB(x, y)).toBeCloseTo(0.7769546554242184, 14);
  });

  it('gives tied values the average of their ranks', () => {
    expect(Array.from(averageRanks([10, 20, 20, 5, 20]))).toEqual([2, 4, 4, 1, 4]);
  });

  it('is +1 / -1 for monotone relations and symmetric in its arguments', () => {
    const a = [1, 2, 3, 4, 5];
    const b = [2, 4, 8, 16, 32];
    expect(spearman(a, b)).toBeCloseTo(1, 15);
    expect(kendallTauB(a, b)).toBe(1);
    expect(kendallTauB(a, b.slice().reverse())).toBe(-1);
    expect(spearman(x, y)).toBeCloseTo(spearman(y, x), 15);
    expect(kendallTauB(x, y)).toBeCloseTo(kendallTauB(y, x), 15);
  });

  it('returns NaN when one side is constant', () => {
    expect(Number.isNaN(spearman([1, 1, 1], [1, 2, 3]))).toBe(true);
    expect(Number.isNaN(kendallTauB([1, 1, 1], [1, 2, 3]))).toBe(true);
    expect(Number.isNaN(pearson([1, 2], [3, 3]))).toBe(true);
  });

  it('rejects unequal lengths and non-finite values', () => {
    expect(() => spearman([1, 2], [1])).toThrow(/equal lengths/);
    expect(() => kendallTauB([1, NaN], [1, 2])).toThrow(/finite/);
  });
});
