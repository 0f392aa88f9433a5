/**
 * Masked-LM pseudo-perplexity: the masking protocol of kjv-bert-tiny's eval.json, checked on a
 * fixture's tokenizer, and the figure of eval.json reproduced on the trained model itself.
 */
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { loadTokenizer } from '@zerolm/runtime';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { describeShared, sharedPaths } from '../../adapters/test/shared-data';
import { maskedLmPerplexity, maskedLmText, mulberry32 } from '../src';

const bert = path.join(sharedPaths.modelsDir, 'kjv-bert-tiny');
let work: string;
beforeAll(() => {
  ensureFixtures(['bert-tiny']);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-masked-lm-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('masked-LM text', () => {
  it('masks round(15%) of the non-special tokens, the smallest draws first, and frames 62-token pieces as [CLS] piece [SEP]', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => `the baker opened her shop , and the stranger went to the library ${i % 3 ? '.' : '[UNK] ?'}`);
    const file = path.join(work, 'text.txt');
    fs.writeFileSync(file, `${lines.join('\n')}\n\n`);
    const dir = fixturePath('bert-tiny');
    const tokenizer = await loadTokenizer(dir);
    const stream = lines.flatMap((line) => tokenizer.encode(line, false));
    const text = await maskedLmText(dir, file, { seed: 3 });
    const candidates = stream.map((id, i) => [id, i] as const).filter(([id]) => id > 4);
    expect(text.streamTokens).toBe(stream.length);
    expect(text.candidates).toBe(candidates.length);
    expect(text.tokens).toBe(Math.floor(0.15 * candidates.length + 0.5));
    expect(text.pieces).toHaveLength(Math.ceil(stream.length / 62));
    // The masked stream positions are the k candidates with the smallest draws.
    const draw = mulberry32(3);
    const expected = candidates
      .map(([, i]) => ({ i, u: draw() }))
      .sort((a, b) => a.u - b.u || a.i - b.i)
      .slice(0, text.tokens)
      .map((c) => c.i)
      .sort((a, b) => a - b);
    const masked: number[] = [];
    text.pieces.forEach((piece, p) => {
      expect(piece[0]).toBe(2);
      expect(piece[piece.length - 1]).toBe(3);
      const { positions, targets } = text.masked[p]!;
      positions.forEach((position, k) => {
        expect(piece[position]).toBe(4);
        expect(targets[k]).toBe(stream[p * 62 + position - 1]);
        masked.push(p * 62 + position - 1);
      });
      // Unmasked positions hold the stream's own ids.
      for (let t = 1; t < piece.length - 1; t++) if (!positions.includes(t)) expect(piece[t]).toBe(stream[p * 62 + t - 1]);
    });
    expect(masked).toEqual(expected);
  });

  it('refuses a model without a logits output by name', async () => {
    const dir = fixturePath('bert-tiny');
    const file = path.join(work, 'short.txt');
    fs.writeFileSync(file, 'the baker opened her shop\n');
    const text = await maskedLmText(dir, file);
    await expect(maskedLmPerplexity(dir, text, { device: 'cpu' })).rejects.toThrow(/model\.onnx has no "logits" output: not a fill-mask \(masked-LM\) export/);
  });
});

describeShared(
  'masked-LM pseudo-perplexity of the trained encoder',
  () => {
    it("reproduces eval.json: its generator, its counts and its pseudo-perplexity (52.32) to 1e-6", async () => {
      const evaluation = JSON.parse(fs.readFileSync(path.join(bert, 'eval.json'), 'utf8'));
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      const reference = new Function(`return ${evaluation.mulberry32 as string}`)() as (seed: number) => () => number;
      const ours = mulberry32(0);
      const theirs = reference(0);
      for (let i = 0; i < 1000; i++) expect(ours()).toBe(theirs());
      const text = await maskedLmText(bert, path.join(bert, 'heldout.txt'), { seed: evaluation.seed, fraction: evaluation.mask_fraction, window: evaluation.window - 2 });
      expect(text.streamTokens).toBe(evaluation.heldout_stream_tokens);
      expect(text.candidates).toBe(evaluation.candidates);
      expect(text.tokens).toBe(evaluation.tokens);
      const result = await maskedLmPerplexity(bert, text, { device: 'cpu' });
      expect(result.tokens).toBe(evaluation.tokens);
      expect(Math.abs(result.perplexity / evaluation.mlm_ppl - 1)).toBeLessThan(1e-6);
    });
  },
  [bert],
);
