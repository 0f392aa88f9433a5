/**
 * `prune` on the weight formats and storage layouts transformers.js repositories ship: external
 * data read in place (the calibration's edited copies link to the source's data files instead of
 * copying them) and written back in the same layout.
 */
import { generateModel } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import { join } from 'path';
import { prune } from '../src';
import { tempRoot } from '../../export/test/export-helpers';

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
