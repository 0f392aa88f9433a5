/**
 * The external data layout real exporters write (onnx.save: `<file>_data`, tensors of at least
 * 1024 bytes appended unaligned) and `saveModel`'s `'auto'` mode, which uses it only for a file
 * that would not fit a protobuf (tested with a lowered limit).
 */
import * as fs from 'fs';
import * as path from 'path';
import { encodeModel, externalDataInfo, externalDataLocations, inlineModelSize, isExternalTensor, loadModel, saveModel, standardExternalData } from '../src';
import { buildMlp, tempDir } from './helpers';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

test('inlineModelSize bounds the encoded size from above by at most 16 bytes per initializer', () => {
  const { model } = buildMlp('size', 40, 64, 30);
  const encoded = encodeModel(model).byteLength;
  const estimate = inlineModelSize(model);
  expect(estimate).toBeGreaterThanOrEqual(encoded);
  expect(estimate - encoded).toBeLessThanOrEqual(16 * model.graph!.initializer.length);
});

test("'auto' keeps a model inline below the limit and writes the onnx.save layout from it on", () => {
  const { model } = buildMlp('auto', 40, 64, 30);
  const file = path.join(dir, 'model_q4.onnx');
  const inline = saveModel(model, file, { externalData: 'auto' });
  expect(inline.externalData).toBeUndefined();
  expect(fs.existsSync(`${file}_data`)).toBe(false);

  const saved = saveModel(model, file, { externalData: 'auto', autoLimit: inlineModelSize(model) });
  expect(saved.externalData).toEqual({ location: 'model_q4.onnx_data', bytes: fs.statSync(`${file}_data`).size });
  expect(saved.bytes).toBe(fs.statSync(file).size);
  const loaded = loadModel(file);
  expect(externalDataLocations(loaded.model)).toEqual(['model_q4.onnx_data']);
  let offset = 0;
  for (const tensor of loaded.model.graph!.initializer) {
    const bytes = loaded.decodeTensor(tensor).byteLength;
    expect(isExternalTensor(tensor)).toBe(bytes >= 1024);
    if (!isExternalTensor(tensor)) continue;
    expect(externalDataInfo(tensor)).toEqual({ location: 'model_q4.onnx_data', offset, length: bytes });
    offset += bytes;
  }
  expect(offset).toBe(saved.externalData!.bytes);
  expect(standardExternalData('/a/b/model.onnx')).toEqual({ location: 'model.onnx_data', sizeThreshold: 1024, alignment: 1 });
});
