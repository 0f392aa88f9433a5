/**
 * `prune` on the weight formats and storage layouts transformers.js repositories ship: external
 * data read in place (the calibration's edited copies link to the source's data files instead of
 * copying them) and written back in the same layout; a folder holding only a q4f16 file planned,
 * calibrated and corrected on that file; the refit written into every format.
 */
import { DTYPE_FILES, DTYPES_BY_PRECISION, loadHfModel, type ModelDtype } from '@zerolm/adapters';
import { ensureFixtures, fixturePath, generateModel } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import { join } from 'path';
import { prune } from '../src';
import { expectCachedGreedyMatches, tempRoot } from '../../export/test/export-helpers';

const root = tempRoot('prune-formats');
afterAll(() => root.remove());

test('a model with external data is calibrated, refitted and written with external data', async () => {
  const source = join(root.dir, 'llama-external');
  generateModel({ family: 'llama', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 384, maxPositions: 64, seed: 6, externalData: true }, source);
  const out = join(root.dir, 'llama-external-p50');
  const result = await prune(source, { targetParams: 0.5, out, evals: 100 });
  expect(result.planFile.correction.method).toBe('refit');
  expect(result.export!.onnxFiles).toEqual([expect.objectContaining({ dtype: 'fp32', file: 'onnx/model.onnx', externalData: expect.objectContaining({ file: 'onnx/model.onnx_data' }) })]);
  expect(fs.existsSync(join(out, 'onnx', 'model.onnx_data'))).toBe(true);
  expect(JSON.parse(fs.readFileSync(join(out, 'config.json'), 'utf8'))['transformers.js_config']).toEqual({ use_external_data_format: { 'model.onnx': 1 } });
});

test('where the data cannot be linked (another file system), the calibration hands it to onnxruntime in memory', async () => {
  const source = join(root.dir, 'llama-external');
  // The module object itself: the compiled import reads its properties through getters.
  const link = jest.spyOn(require('fs') as typeof fs, 'linkSync').mockImplementation(() => {
    throw Object.assign(new Error('EXDEV: cross-device link not permitted'), { code: 'EXDEV' });
  });
  try {
    const result = await prune(source, { targetParams: 0.5, planOnly: true, evals: 100, importance: 'self-generated' });
    expect(link).toHaveBeenCalled();
    expect(result.planFile.calibration).toBeDefined();
  } finally {
    link.mockRestore();
  }
});

describe('every weight format', () => {
  beforeAll(() => ensureFixtures(['llama-formats']));

  test('a q4f16-only folder is planned, calibrated, refitted and written from its own file, and generates in transformers.js', async () => {
    const source = join(root.dir, 'q4f16-only');
    fs.cpSync(fixturePath('llama-formats'), source, { recursive: true });
    for (const dtype of DTYPES_BY_PRECISION) if (dtype !== 'q4f16') fs.rmSync(join(source, 'onnx', DTYPE_FILES[dtype]));
    const out = join(root.dir, 'q4f16-only-p60');
    const result = await prune(source, { targetParams: 0.6, out, evals: 100 });
    expect(result.planFile.dtype).toBe('q4f16');
    expect(result.planFile.importance.rule).toBe('self-generated');
    expect(result.planFile.calibration).toBeDefined();
    expect(result.planFile.correction.method).toBe('refit');
    expect(result.planFile.files!.map((f) => [f.dtype, f.file, f.from])).toEqual([['q4f16', 'onnx/model_q4f16.onnx', 'pruned']]);
    expect(result.planFile.files![0]!.bytes).toBe(fs.statSync(join(out, 'onnx', 'model_q4f16.onnx')).size);
    expect(result.planFile.files![0]!.requantized.some((r) => r.reason === 'corrected values')).toBe(true);
    expect(JSON.parse(fs.readFileSync(join(out, 'plan.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(result.planFile)));
    expect(fs.readdirSync(join(out, 'onnx'))).toEqual(['model_q4f16.onnx']);
    expect(result.plan.params.after).toBeLessThanOrEqual(result.plan.params.budget!);
    const tokens = await expectCachedGreedyMatches(out, 'q4f16');
    expect(tokens.length).toBeGreaterThanOrEqual(4);
  });

  test('the refit is written into every format, re-quantized where quantized', async () => {
    const out = join(root.dir, 'llama-formats-p60');
    const result = await prune(fixturePath('llama-formats'), { targetParams: 0.6, out, evals: 100, importance: 'magnitude' });
    expect(result.planFile.dtype).toBe('fp32');
    expect(result.overrides.length).toBeGreaterThan(0);
    expect(result.planFile.files!.map((f) => f.dtype)).toEqual(DTYPES_BY_PRECISION);
    const fp32 = loadHfModel(out);
    for (const file of result.planFile.files!) {
      const model = loadHfModel(out, { dtype: file.dtype as ModelDtype });
      for (const override of result.overrides) {
        const role = override.role;
        const written = [...model.graph.layers[override.layer]!.attention.matrices, ...model.graph.layers[override.layer]!.ffn.matrices].find((m) => m.role === role)!.values();
        const exact = [...fp32.graph.layers[override.layer]!.attention.matrices, ...fp32.graph.layers[override.layer]!.ffn.matrices].find((m) => m.role === role)!.values();
        let num = 0;
        let den = 0;
        for (let i = 0; i < exact.length; i++) {
          num += (written[i]! - exact[i]!) ** 2;
          den += exact[i]! ** 2;
        }
        // fp32 holds the refitted values; every other format holds them within its own rounding.
        if (file.dtype === 'fp32') expect(Array.from(written)).toEqual(Array.from(Float32Array.from(override.values!)));
        const bound = { fp32: 0, fp16: 1e-3, q8: 0.05, int8: 0.05, uint8: 0.05, q4: 0.2, q4f16: 0.2, bnb4: 0.2 }[file.dtype as ModelDtype];
        expect({ dtype: file.dtype, layer: override.layer, role, close: Math.sqrt(num / den) <= bound }).toEqual({ dtype: file.dtype, layer: override.layer, role, close: true });
      }
      if (['q4', 'q4f16', 'bnb4'].includes(file.dtype)) expect(file.requantized.filter((r) => r.reason === 'corrected values')).toHaveLength(result.overrides.length);
    }
  });

  test('dtypes writes the chosen files; a format the source lacks is converted from the corrected fp32 file', async () => {
    ensureFixtures(['llama-tiny']);
    const out = join(root.dir, 'llama-tiny-q4f16');
    const result = await prune(fixturePath('llama-tiny'), { targetParams: 0.6, out, evals: 100, importance: 'magnitude', dtypes: ['q4f16', 'fp32'] });
    expect(result.planFile.files!.map((f) => [f.dtype, f.from])).toEqual([['fp32', 'pruned'], ['q4f16', 'converted from fp32']]);
    expect(result.export!.skipped).toEqual(['onnx/model_fp16.onnx', 'onnx/model_quantized.onnx']);
    const fp32 = loadHfModel(out);
    const q4f16 = loadHfModel(out, { dtype: 'q4f16' });
    for (const override of result.overrides) {
      const pick = (m: typeof fp32) => [...m.graph.layers[override.layer]!.attention.matrices, ...m.graph.layers[override.layer]!.ffn.matrices].find((x) => x.role === override.role)!.values();
      expect(Array.from(pick(fp32))).toEqual(Array.from(Float32Array.from(override.values!)));
      const a = pick(q4f16);
      const b = pick(fp32);
      let num = 0;
      let den = 0;
      for (let i = 0; i < b.length; i++) {
        num += (a[i]! - b[i]!) ** 2;
        den += b[i]! ** 2;
      }
      expect(Math.sqrt(num / den)).toBeLessThan(0.2);
    }
    await expectCachedGreedyMatches(out, 'q4f16');
  });
});
