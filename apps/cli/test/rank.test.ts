/**
 * `zerolm rank` on small files written here (no shared data needed): the --json shape, the
 * --plot SVG, and every input error as one line with exit code 2. The paper's targets and the
 * expected-vs-sampled agreement on the real benchmarks are in rank-benchmarks.test.ts.
 */
import { listAlphaStrategies } from '@zerolm/core';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectCleanError, runCli } from './run-cli';

/** Twelve small LTS GPT-2 entries (1-3 layers, width 32 or 64): quick to draw, valid for the adapter. */
function tinyLtsEntries(count = 12): object[] {
  return Array.from({ length: count }, (_, i) => {
    const layers = 1 + (i % 3);
    return {
      id: `tiny_${i}`,
      model_config: {
        n_layer: layers,
        d_model: i % 2 === 0 ? 32 : 64,
        n_head: new Array(layers).fill(2),
        d_inner: Array.from({ length: layers }, (_, l) => 64 + 16 * ((i + l) % 4)),
        n_token: 100,
        tgt_len: 16,
        weight_init_std: 0.02,
      },
      // Perplexity falls with depth and width, with some spread, so the correlations are defined.
      valid_ppl: 60 - 6 * layers - (i % 2) * 4 + (i % 5),
    };
  });
}

function withConfig(entry: object, changes: object): object {
  return { ...entry, model_config: { ...(entry as { model_config: object }).model_config, ...changes } };
}

interface Correlation {
  mean: number;
  std: number;
  repeats: number[];
}

interface RankJson {
  benchmark: string;
  n: number;
  measure: string;
  init: string;
  alphaStrategy: string;
  alpha: number;
  repeats: number;
  results: Array<{ proxy: string; alphaStrategy?: string; alpha?: number; alphas?: number[]; spearman: Correlation; kendall: Correlation }>;
  architectures: Array<{ id: string; groundTruth: number; params: number; layers: number; attention: number; ffn: number; score: number }>;
}

describe('zerolm rank (small LTS file)', () => {
  let dir: string;
  let data: string;
  const at = (name: string): string => path.join(dir, name);
  /** Quick settings for 12 architectures. */
  const small = ['--sample-size', '5', '--repeats', '4'];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-rank-'));
    data = at('lts-small.json');
    fs.writeFileSync(data, JSON.stringify(tinyLtsEntries()));
    const ids = tinyLtsEntries().map((e) => (e as { id: string }).id);
    // A baseline table in the published CSV layout: ID, the ground-truth column, two proxies.
    const rows = ids.map((id, i) => `${id},${70 + i},${i * 1.5},${(i * 7) % 5}`);
    fs.writeFileSync(at('baselines.csv'), ['ID,GLUE Score,proxy one,proxy two', ...rows].join('\n'));
    fs.writeFileSync(at('baselines-missing.csv'), ['ID,GLUE Score,proxy one', ...rows.slice(0, 9).map((r) => r.split(',').slice(0, 3).join(','))].join('\n'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('--json and --plot', () => {
    let report: RankJson;
    let svg: string;
    beforeAll(() => {
      const result = runCli(['rank', '--benchmark', 'lts-gpt2', '--data', data, ...small, '--baselines', at('baselines.csv'), '--json', '--plot', at('plot.svg')]);
      expect(result.code).toBe(0);
      report = JSON.parse(result.stdout) as RankJson;
      svg = fs.readFileSync(at('plot.svg'), 'utf8');
    });

    it('names the benchmark, the size, the measure and the init mode', () => {
      expect(report).toMatchObject({ benchmark: 'lts-gpt2', n: 12, measure: 'msv', init: 'sampled', alphaStrategy: 'sample' });
    });

    it('has a ZeroLM row per alpha strategy, then params, depth and every baseline column but the ground truth', () => {
      const zerolm = report.results.filter((r) => r.proxy === 'zerolm');
      expect(zerolm.map((r) => r.alphaStrategy)).toEqual(listAlphaStrategies().map((s) => s.name));
      for (const row of zerolm) {
        expect(row.alpha).toBeGreaterThanOrEqual(0);
        expect(row.alpha).toBeLessThanOrEqual(1);
      }
      expect(report.results.filter((r) => r.proxy !== 'zerolm').map((r) => r.proxy)).toEqual(['params', 'depth', 'proxy one', 'proxy two']);
      for (const row of report.results) {
        for (const summary of [row.spearman, row.kendall]) {
          expect(Object.keys(summary).sort()).toEqual(['mean', 'repeats', 'std']);
          expect(Math.abs(summary.mean)).toBeLessThanOrEqual(1);
          expect(summary.std).toBeGreaterThanOrEqual(0);
          // One correlation per held-out split; mean and std summarise exactly those.
          expect(summary.repeats).toHaveLength(report.repeats);
          const mean = summary.repeats.reduce((a, b) => a + b, 0) / summary.repeats.length;
          expect(summary.mean).toBeCloseTo(mean, 12);
        }
        if (row.proxy === 'zerolm') expect(row.alphas).toHaveLength(report.repeats);
      }
    });

    it('lists every architecture with its components, and the score at the chosen strategy alpha', () => {
      const chosen = report.results.find((r) => r.proxy === 'zerolm' && r.alphaStrategy === report.alphaStrategy)!;
      expect(report.alpha).toBe(chosen.alpha);
      const entries = tinyLtsEntries() as Array<{ id: string; valid_ppl: number; model_config: { n_layer: number } }>;
      expect(report.architectures.map((a) => a.id)).toEqual(entries.map((e) => e.id));
      report.architectures.forEach((a, i) => {
        expect(Object.keys(a).sort()).toEqual(['attention', 'ffn', 'groundTruth', 'id', 'layers', 'params', 'score'].sort());
        expect(a.groundTruth).toBe(-entries[i]!.valid_ppl);
        expect(a.layers).toBe(entries[i]!.model_config.n_layer);
        expect(a.params).toBeGreaterThan(0);
        expect(a.attention).toBeGreaterThan(0);
        expect(a.ffn).toBeGreaterThan(0);
        expect(a.score).toBeCloseTo(chosen.alpha! * a.attention + (1 - chosen.alpha!) * a.ffn, 10);
      });
    });

    it('plots an SVG whose title holds the chosen strategy rho and tau', () => {
      const chosen = report.results.find((r) => r.proxy === 'zerolm' && r.alphaStrategy === report.alphaStrategy)!;
      expect(svg).toMatch(/^<svg[\s>]/);
      expect(svg).toContain(`rho ${chosen.spearman.mean.toFixed(3)}, tau ${chosen.kendall.mean.toFixed(3)}`);
      expect(fs.readdirSync(dir).filter((f) => f.includes('plot') && f !== 'plot.svg')).toEqual([]); // no temp file left
    });

    it('uses the --alpha of the fixed strategy when asked for it', () => {
      const result = runCli(['rank', '--benchmark', 'lts-gpt2', '--data', data, ...small, '--alpha-strategy', 'fixed', '--alpha', '0.3', '--init', 'expected', '--json']);
      expect(result.code).toBe(0);
      const fixed = JSON.parse(result.stdout) as RankJson;
      expect(fixed).toMatchObject({ init: 'expected', alphaStrategy: 'fixed', alpha: 0.3 });
      for (const a of fixed.architectures) expect(a.score).toBeCloseTo(0.3 * a.attention + 0.7 * a.ffn, 10);
    });
  });

  describe('input errors: one line, exit code 2, no output file', () => {
    const plotIfAny = (): string => at('failed.svg');
    // Neither the plot nor a temporary file next to it.
    afterEach(() => expect(fs.readdirSync(dir).filter((f) => f.includes('failed'))).toEqual([]));

    const rank = (args: string[]): ReturnType<typeof runCli> => runCli(['rank', ...args, '--plot', plotIfAny()]);

    it('an unreadable data file (missing, or a folder)', () => {
      expectCleanError(rank(['--benchmark', 'lts-gpt2', '--data', at('absent.json')]), /cannot read LTS benchmark file .*absent\.json/);
      expectCleanError(rank(['--benchmark', 'lts-gpt2', '--data', dir]), /cannot read LTS benchmark file/);
    });

    it('truncated JSON', () => {
      fs.writeFileSync(at('truncated.json'), fs.readFileSync(data, 'utf8').slice(0, 300));
      expectCleanError(rank(['--benchmark', 'lts-gpt2', '--data', at('truncated.json')]), /truncated\.json" is not valid JSON/);
    });

    it.each([
      ['an object instead of a list', 'lts-gpt2', { architectures: [] }, /the top level must be an array/],
      ['an empty list', 'lts-gpt2', [], /lists no architectures/],
      ['entries that are not objects', 'lts-gpt2', [1, 2], /entry 0: expected an object/],
      ['an entry without valid_ppl', 'lts-gpt2', [{ ...tinyLtsEntries(1)[0], valid_ppl: undefined }], /valid_ppl is missing/],
      ['a per-layer list of the wrong length', 'lts-gpt2', [withConfig(tinyLtsEntries(3)[2]!, { n_layer: 3, n_head: [2] })], /tiny_2\): model_config\.n_head/],
      ['LTS entries read as FlexiBERT', 'flexibert', tinyLtsEntries(), /FlexiBERT benchmark file .* hparams must be an object/],
    ])('a file of the wrong structure: %s', (_, benchmark, content, pattern) => {
      fs.writeFileSync(at('wrong.json'), JSON.stringify(content));
      expectCleanError(rank(['--benchmark', benchmark as string, '--data', at('wrong.json')]), pattern as RegExp);
    });

    it.each([['1.5'], ['-0.1']])('--alpha %s, outside [0, 1]', (alpha) => {
      expectCleanError(rank(['--benchmark', 'lts-gpt2', '--data', data, '--alpha-strategy', 'fixed', '--alpha', alpha]), /alpha must be in \[0, 1\]/);
    });

    it('--sample-size not below the number of architectures (the default 50, and 12 of 12)', () => {
      expectCleanError(rank(['--benchmark', 'lts-gpt2', '--data', data]), /--sample-size \(50\) must be smaller than the number of architectures \(12\)/);
      expectCleanError(rank(['--benchmark', 'lts-gpt2', '--data', data, '--sample-size', '12']), /--sample-size \(12\) must be smaller/);
    });

    it('a --baselines CSV without rows for some architectures', () => {
      expectCleanError(
        rank(['--benchmark', 'lts-gpt2', '--data', data, ...small, '--baselines', at('baselines-missing.csv')]),
        /baseline CSV .* has no row for 3 of 12 architectures \(first: tiny_9, tiny_10, tiny_11\)/,
      );
    });

    it('an unknown benchmark, named with the known ones', () => {
      expectCleanError(rank(['--benchmark', 'nope', '--data', data]), /--benchmark must be one of flexibert, lts-gpt2 \(got "nope"\)/);
    });
  });
});
