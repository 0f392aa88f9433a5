/**
 * The exporter is atomic and never touches its input: bad plans and bad output folders get
 * clear errors with nothing written; a non-empty output folder is replaced only with `force`
 * and only by a complete export; the input folder's bytes never change; an ONNX file the
 * exporter cannot write stops the export unless `dtypes` leaves it out (then it is listed as
 * skipped, not copied); extra files are written.
 */
import { createHash } from 'crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import { dirname, join } from 'path';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import { loadHfModel, nonUniformPlan, planFor, tempRoot } from './export-helpers';

const root = tempRoot('export-safety');
let input: string;
let withUnknownFile: string;

/** sha256 of every file under `dir`, by relative path. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full, `${prefix}${entry.name}/`);
      else out[`${prefix}${entry.name}`] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

/** Entries of `dir` (to see that nothing, not even a temporary folder, was left behind). */
function entries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

beforeAll(() => {
  ensureFixtures(['llama-tiny']);
  // A private copy with a nested extra file, and one more with a model file the exporter does not write (q2).
  input = join(root.dir, 'input', 'llama-tiny');
  cpSync(fixturePath('llama-tiny'), input, { recursive: true });
  mkdirSync(join(input, 'extras'));
  writeFileSync(join(input, 'extras', 'notes.txt'), 'kept as is');
  withUnknownFile = join(root.dir, 'input', 'llama-tiny-q2');
  cpSync(input, withUnknownFile, { recursive: true });
  writeFileSync(join(withUnknownFile, 'onnx', 'model_q2.onnx'), 'not exported');
});
afterAll(() => root.remove());

test('a model file the exporter cannot write stops the export before anything is written', async () => {
  const out = join(root.dir, 'out-q2', 'pruned');
  const plan = nonUniformPlan(loadHfModel(withUnknownFile).graph);
  await expect(exportPrunedModel(withUnknownFile, plan, out)).rejects.toThrow(/onnx\/model_q2\.onnx of .* is not a weight file the exporter writes .*; choose the files to write with dtypes \/ --dtypes/);
  expect(entries(join(root.dir, 'out-q2'))).toEqual([]);
});

test('exports, copies the other files, lists skipped ONNX files, writes extra files; the input is untouched', async () => {
  const input = withUnknownFile;
  const before = fingerprint(input);
  const out = join(root.dir, 'out', 'nested', 'pruned');
  const plan = nonUniformPlan(loadHfModel(input).graph);
  const result = await exportPrunedModel(input, plan, out, {
    zerolm: { budget: 0.7 },
    files: { 'plan.json': '{"x":1}', 'reports/summary.txt': 'ok', 'reports/files.json': (written) => JSON.stringify(written.onnxFiles.map((f) => [f.dtype, f.file])) },
    dtypes: ['fp32', 'fp16', 'q8'],
  });
  expect(fingerprint(input)).toEqual(before);
  expect(result.outDir).toBe(out);
  expect(result.skipped).toEqual(['onnx/model_q2.onnx']);
  expect(JSON.parse(readFileSync(join(out, 'reports/files.json'), 'utf8'))).toEqual([['fp32', 'onnx/model.onnx'], ['fp16', 'onnx/model_fp16.onnx'], ['q8', 'onnx/model_quantized.onnx']]);
  expect(result.files).toEqual([
    'config.json',
    'extras/notes.txt',
    'generation_config.json',
    'onnx/model.onnx',
    'onnx/model_fp16.onnx',
    'onnx/model_quantized.onnx',
    'plan.json',
    'reports/files.json',
    'reports/summary.txt',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  expect(readFileSync(join(out, 'tokenizer.json'))).toEqual(readFileSync(join(input, 'tokenizer.json')));
  expect(readFileSync(join(out, 'extras/notes.txt'), 'utf8')).toBe('kept as is');
  expect(readFileSync(join(out, 'reports/summary.txt'), 'utf8')).toBe('ok');
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  expect(config.num_hidden_layers).toBe(2);
  // Non-uniform layers (2/1 and 4/2 heads): the config states the largest, zerolm.layers each.
  expect(config.num_attention_heads).toBe(4);
  expect(config.num_key_value_heads).toBe(2);
  expect(config.head_dim).toBe(8);
  expect(config.zerolm).toMatchObject({ budget: 0.7, headDim: 8, source: input, layers: [{ heads: 2, kvHeads: 1, sourceLayer: 0 }, { heads: 4, kvHeads: 2, sourceLayer: 1 }] });
  expect(entries(dirname(out))).toEqual(['pruned']);
});

describe('bad input: a clear error, nothing written, the input untouched', () => {
  const cases: [string, () => { out: string; plan?: object; force?: boolean; files?: Record<string, string> }, RegExp][] = [
    ['a plan for another number of layers', () => ({ out: join(root.dir, 'bad-1'), plan: { layers: [] } }), /plan does not fit onnx\/model\.onnx.*0 layers, the model 2/],
    [
      'a plan with an out-of-range group',
      () => ({ out: join(root.dir, 'bad-2'), plan: planFor(loadHfModel(input).graph, { 1: { groups: [0, 5] } }) }),
      /layer 1: kept key-value groups must be ascending indices below 2/,
    ],
    ['a plan whose layers are out of order', () => ({ out: join(root.dir, 'bad-7'), plan: { layers: [...planFor(loadHfModel(input).graph).layers].reverse() } }), /position 0 says index 1/],
    ['a plan dropping every layer', () => ({ out: join(root.dir, 'bad-3'), plan: planFor(loadHfModel(input).graph, { 0: { dropped: true }, 1: { dropped: true } }) }), /drops every layer/],
    ['an output folder inside the input', () => ({ out: join(input, 'pruned') }), /inside \(or is\) the input model folder/],
    ['the input folder itself', () => ({ out: input, force: true }), /inside \(or is\) the input model folder/],
    ['an output folder containing the input', () => ({ out: join(root.dir, 'input'), force: true }), /contains the input model folder/],
    ['an extra file outside the output folder', () => ({ out: join(root.dir, 'bad-4'), files: { '../escape.txt': 'x' } }), /must be a relative path inside the output folder/],
    ['an extra file replacing the model', () => ({ out: join(root.dir, 'bad-5'), files: { 'onnx/model.onnx': 'x' } }), /would overwrite the exported ONNX files/],
    // Fails while writing (a file where a folder must go): the new parent folders go too.
    ['a failure half-way through writing', () => ({ out: join(root.dir, 'deep', 'er', 'out'), files: { 'tokenizer.json/x': 'y' } }), /ENOTDIR|EEXIST/],
  ];
  test.each(cases)('%s', async (_, make, message) => {
    const before = fingerprint(input);
    const rootBefore = entries(root.dir);
    const { out, plan, force, files } = make();
    const thePlan = (plan ?? planFor(loadHfModel(input).graph)) as Parameters<typeof exportPrunedModel>[1];
    await expect(exportPrunedModel(input, thePlan, out, { ...(force ? { force } : {}), ...(files ? { files } : {}) })).rejects.toThrow(message);
    expect(fingerprint(input)).toEqual(before);
    expect(entries(root.dir)).toEqual(rootBefore);
  });

  test('a missing input folder', async () => {
    await expect(exportPrunedModel(join(root.dir, 'nope'), { layers: [] }, join(root.dir, 'bad-6'))).rejects.toThrow(/does not exist or is not a folder/);
    expect(existsSync(join(root.dir, 'bad-6'))).toBe(false);
  });
});

test('a non-empty output folder is refused without force and replaced with it', async () => {
  const out = join(root.dir, 'existing');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'old.txt'), 'old');
  const plan = nonUniformPlan(loadHfModel(input).graph);
  await expect(exportPrunedModel(input, plan, out)).rejects.toThrow(/is not empty \(replace it with --force/);
  expect(readdirSync(out)).toEqual(['old.txt']);
  const siblings = entries(root.dir);

  // A failing export with force leaves the old folder as it was.
  await expect(exportPrunedModel(input, { layers: [] }, out, { force: true })).rejects.toThrow(/plan does not fit/);
  expect(readdirSync(out)).toEqual(['old.txt']);

  await exportPrunedModel(input, plan, out, { force: true });
  expect(existsSync(join(out, 'old.txt'))).toBe(false);
  expect(existsSync(join(out, 'onnx', 'model.onnx'))).toBe(true);
  expect(entries(root.dir)).toEqual(siblings);
});

test('an empty output folder is used without force', async () => {
  const out = join(root.dir, 'empty');
  mkdirSync(out);
  await exportPrunedModel(input, planFor(loadHfModel(input).graph), out);
  expect(existsSync(join(out, 'config.json'))).toBe(true);
});
