/**
 * The family registry: one place that lists the supported families. The README tables are
 * generated from it (set ZEROLM_UPDATE_README=1 to rewrite them), and an unsupported model is
 * refused with the closest supported family and what in its graph was not recognised.
 */
import { cpSync, readFileSync, writeFileSync } from 'fs';
import * as path from 'path';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { configShapeKeys, familiesMarkdown, graphStyle, graphStylesMarkdown, loadHfModel, registeredFamilies } from '../src';
import { repoRoot } from './shared-data';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';

const README_BLOCK = /(<!-- families:start -->\n)[\s\S]*?(<!-- families:end -->)/;
const STYLES_BLOCK = /(<!-- styles:start -->\n)[\s\S]*?(<!-- styles:end -->)/;
const READMES = [path.join(repoRoot, 'README.md'), path.join(repoRoot, 'packages/adapters/README.md')];

describe('family registry', () => {
  it.each(READMES)('%s lists exactly the registered families', (file) => {
    const text = readFileSync(file, 'utf8');
    const current = text.replace(README_BLOCK, `$1${familiesMarkdown()}\n$2`).replace(STYLES_BLOCK, `$1${graphStylesMarkdown()}\n$2`);
    if (process.env['ZEROLM_UPDATE_README'] === '1') writeFileSync(file, current);
    expect(README_BLOCK.test(text)).toBe(true);
    expect(STYLES_BLOCK.test(text)).toBe(true);
    expect(text).toBe(current);
  });

  it('registers each model_type once, with the keys config.json is read and written with', () => {
    const types = registeredFamilies().map((f) => f.modelType);
    expect(new Set(types).size).toBe(types.length);
    for (const family of registeredFamilies()) {
      expect(configShapeKeys(family.modelType).layers).toEqual(family.keys.layers);
    }
  });
});

test.each([
  ['llama-tiny', 'torch.onnx'],
  ['llama-genai', 'onnxruntime-genai'],
  ['bert-fused', 'onnxruntime-optimizer'],
  ['bert-fused-mha', 'onnxruntime-optimizer'],
])('%s is read as a %s graph', (name, style) => {
  ensureFixtures([name]);
  expect(graphStyle(loadHfModel(fixturePath(name)).match)).toBe(style);
});

describe('an unsupported model_type', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'zerolm-families-'));
  beforeAll(() => ensureFixtures(['llama-tiny', 'bert-tiny', 'gpt2-tiny']));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function relabelled(name: string, modelType: string): string {
    const dir = path.join(root, `${name}-as-${modelType}`);
    cpSync(fixturePath(name), dir, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: modelType }));
    return dir;
  }

  it.each([
    ['llama-tiny', 'bloom', 'llama'],
    ['bert-tiny', 'camembert', 'bert'],
    ['gpt2-tiny', 'gpt_bigcode', 'gpt2'],
  ])('%s relabelled %s: names %s as the closest supported family and what its graph maps to', (name, modelType, closest) => {
    const dir = relabelled(name, modelType);
    expect(() => loadHfModel(dir)).toThrow(
      new RegExp(`^unsupported model family "${modelType}" .*; closest supported: ${closest} \\(.*\\); its graph maps to 2 layers of attention and FFN$`),
    );
  });

  it('says what in the graph was not recognised when it does not map', () => {
    const dir = relabelled('llama-tiny', 'mamba');
    // A graph without attention: every Softmax replaced by an op the matcher does not know.
    const file = path.join(dir, 'onnx/model.onnx');
    const bytes = readFileSync(file);
    writeFileSync(file, Buffer.from(bytes.toString('latin1').replace(/Softmax/g, 'Hardmax'), 'latin1'));
    expect(() => loadHfModel(dir)).toThrow(/closest supported: llama .*; its graph was not recognised: cannot map the graph to Attention\/FFN modules: no Softmax.*; unknown ops: Hardmax$/);
  });
});
