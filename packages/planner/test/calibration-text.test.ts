/**
 * Calibration on the user's own text (`source: 'text'`): windows of the file's token stream made
 * by the model's own tokenizer, what plan.json records of the file, and clear errors for files
 * that cannot serve.
 */
import { loadHfModel } from '@zerolm/adapters';
import { loadTokenizer } from '@zerolm/runtime';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { calibrate, calibrationSequences, clearCalibrationCache, prune, readCalibrationText } from '../src';
import { tempRoot } from '../../export/test/export-helpers';

const root = tempRoot('calibration-text');
beforeAll(() => ensureFixtures(['llama-tiny', 'gpt2-tiny', 'bert-tiny']));
afterAll(() => root.remove());
afterEach(() => clearCalibrationCache());

const WORDS = ['river', 'bread', 'stone', 'tower', 'market', 'fountain', 'boat', 'compass', 'farm', 'hill'];
/** Sentences over the fixtures' vocabulary, one a line, each ending in its own pair of words. */
const LINES = Array.from({ length: 60 }, (_, i) =>
  [
    'the baker opened her shop before the sun came up',
    'a stranger asked where he might find the library',
    'the keeper smiled and said it was a chart of the night sky',
    'rain began to fall and the room felt calm and safe',
  ][i % 4]! + ` ${WORDS[i % 10]} ${WORDS[Math.floor(i / 10)]}`,
);

function textFile(name: string, content: string | Buffer): string {
  const file = path.join(root.dir, name);
  fs.writeFileSync(file, content);
  return file;
}

/** The slot k whose window stream[k * size, (k + 1) * size) equals `window` (the first), or -1. */
function slotOf(stream: readonly number[], window: readonly number[]): number {
  const size = window.length;
  for (let k = 0; (k + 1) * size <= stream.length; k++) if (window.every((v, i) => stream[k * size + i] === v)) return k;
  return -1;
}

describe('text calibration', () => {
  it('a decoder reads distinct windows of the stream of its lines with their special tokens; the summary names the file, its SHA-256 and the tokens used', async () => {
    const file = textFile('decoder.txt', `${LINES.join('\n')}\n\n`);
    const model = loadHfModel(fixturePath('llama-tiny'));
    const tokenizer = await loadTokenizer(model.dir);
    const stream = LINES.flatMap((line) => tokenizer.encode(line));
    const calibration = await calibrate(model, { source: 'text', text: file, samples: 6, length: 16, seed: 4 });
    const { summary, sequences } = calibration;
    expect(summary).toMatchObject({ source: 'text', samples: 6, length: 16, seed: 4 });
    expect(summary.text).toEqual({
      file: path.resolve(file),
      sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex'),
      lines: LINES.length,
      fileTokens: stream.length,
      tokensUsed: 96,
    });
    expect(summary.sequences).toMatch(/windows of 16 tokens of the text's token stream/);
    const starts = new Set<number>();
    for (let s = 0; s < 6; s++) {
      const window = Array.from(sequences.tokens.slice(s * 16, (s + 1) * 16));
      const slot = slotOf(stream, window);
      expect(slot).toBeGreaterThanOrEqual(0);
      starts.add(slot);
    }
    expect(starts.size).toBe(6);
    // The same seed gives the same windows; another seed others; the first k do not depend on S.
    const again = await calibrationSequences(model, { source: 'text', text: file, samples: 3, length: 16, seed: 4 });
    expect(Array.from(again.tokens)).toEqual(Array.from(sequences.tokens.slice(0, 48)));
    const other = await calibrationSequences(model, { source: 'text', text: file, samples: 6, length: 16, seed: 5 });
    expect(Array.from(other.tokens)).not.toEqual(Array.from(sequences.tokens));
  });

  it('an encoder reads windows of the lines without special tokens, each between [CLS] and [SEP]', async () => {
    const file = textFile('encoder.txt', LINES.join('\r\n'));
    const model = loadHfModel(fixturePath('bert-tiny'));
    const tokenizer = await loadTokenizer(model.dir);
    const stream = LINES.flatMap((line) => tokenizer.encode(line, false));
    const sequences = await calibrationSequences(model, { source: 'text', text: file, samples: 5, length: 12, seed: 0 });
    expect(sequences.text?.tokensUsed).toBe(50);
    for (let s = 0; s < 5; s++) {
      const row = Array.from(sequences.tokens.slice(s * 12, (s + 1) * 12));
      expect(row[0]).toBe(2);
      expect(row[11]).toBe(3);
      expect(slotOf(stream, row.slice(1, 11))).toBeGreaterThanOrEqual(0);
    }
  });

  it('is cached apart from self-generated calibration and per text file', async () => {
    const model = loadHfModel(fixturePath('gpt2-tiny'));
    const file = textFile('cached.txt', LINES.join('\n'));
    const own = await calibrate(model, { samples: 4, length: 8 });
    const text = await calibrate(model, { source: 'text', text: file, samples: 4, length: 8 });
    expect(text).not.toBe(own);
    expect(await calibrate(model, { source: 'text', text: file, samples: 4, length: 8 })).toBe(text);
    // A text file alone implies the text source.
    expect(await calibrate(model, { text: file, samples: 4, length: 8 })).toBe(text);
    fs.writeFileSync(file, LINES.slice(4).join('\n'));
    const changed = await calibrate(model, { source: 'text', text: file, samples: 4, length: 8 });
    expect(changed).not.toBe(text);
    expect(changed.summary.text!.lines).toBe(LINES.length - 4);
  });

  it('prune records the text calibration in plan.json', async () => {
    const file = textFile('prune.txt', LINES.join('\n'));
    const result = await prune(fixturePath('llama-tiny'), { targetParams: 0.6, planOnly: true, calibration: { source: 'text', text: file, samples: 4, length: 16 } });
    expect(result.planFile.calibration).toMatchObject({ source: 'text', samples: 4, length: 16, text: { file: path.resolve(file), tokensUsed: 64 } });
  });

  it('refuses empty, binary, non-UTF-8, blank, missing and too-short files by name, and a text with another source', async () => {
    expect(() => readCalibrationText(textFile('empty.txt', ''))).toThrow(/calibration text .*empty\.txt is empty/);
    expect(() => readCalibrationText(textFile('binary.txt', Buffer.from([0x74, 0x68, 0x65, 0x00, 0x01, 0x02])))).toThrow(/binary\.txt is binary \(it holds NUL bytes\)/);
    expect(() => readCalibrationText(textFile('latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])))).toThrow(/latin1\.txt is not UTF-8 text/);
    expect(() => readCalibrationText(textFile('blank.txt', '\n  \n\t\n'))).toThrow(/blank\.txt holds no text \(only blank lines\)/);
    expect(() => readCalibrationText(path.join(root.dir, 'absent.txt'))).toThrow(/absent\.txt does not exist/);
    expect(() => readCalibrationText(root.dir)).toThrow(/is not a file/);
    const model = loadHfModel(fixturePath('llama-tiny'));
    const short = textFile('short.txt', 'the baker opened her shop\n');
    await expect(calibrationSequences(model, { source: 'text', text: short, samples: 4, length: 16, seed: 0 })).rejects.toThrow(
      /calibration text .*short\.txt is too short: 7 tokens, and 4 sequences need 64 \(4 x 16\)/,
    );
    await expect(calibrationSequences(model, { source: 'text', samples: 4, length: 16, seed: 0 })).rejects.toThrow(/the text calibration source needs a text file/);
    await expect(calibrationSequences(model, { source: 'self-generated', text: short, samples: 4, length: 16, seed: 0 })).rejects.toThrow(/goes with the text source, not self-generated/);
    await expect(calibrationSequences(model, { source: 'books' as never, samples: 4, length: 16, seed: 0 })).rejects.toThrow(/unknown calibration source "books" \(known: self-generated, text, uniform\)/);
    // prune checks the file first, even when no rule or correction would read it.
    await expect(prune(fixturePath('llama-tiny'), { targetParams: 0.5, planOnly: true, importance: 'magnitude', correction: 'none', calibration: { source: 'text', text: textFile('empty-again.txt', '') } })).rejects.toThrow(
      /empty-again\.txt is empty/,
    );
  });

  it('uniform is a source for decoders too', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const calibration = await calibrate(model, { source: 'uniform', samples: 3, length: 8 });
    expect(calibration.summary).toMatchObject({ source: 'uniform' });
    expect(calibration.summary.fallback).toBeUndefined();
  });
});
