import { niceTicks, scatterSvg } from '../src';

describe('scatterSvg', () => {
  it('draws one marker per finite point, labels, and the highlighted point distinctly', () => {
    const svg = scatterSvg({
      title: 'rho 0.91 & tau 0.78',
      xLabel: 'params',
      yLabel: 'fidelity',
      points: [
        { x: 1, y: 2, label: 'p90' },
        { x: 2, y: 3, label: 'p50' },
        { x: 3, y: 1, label: 'reference', highlight: true },
        { x: NaN, y: 1 },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('rho 0.91 &amp; tau 0.78');
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(svg.match(/<rect x=/g)!.length).toBe(2); // plot frame + highlighted point
    for (const label of ['p90', 'p50', 'reference']) expect(svg).toContain(`>${label}</text>`);
  });

  it('refuses to plot nothing', () => {
    expect(() => scatterSvg({ title: '', xLabel: '', yLabel: '', points: [{ x: NaN, y: 0 }] })).toThrow(/nothing to plot/);
  });

  it('places ticks at round values covering the range', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(13, 97)).toEqual([20, 40, 60, 80]);
  });
});
