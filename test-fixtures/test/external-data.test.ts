/**
 * External data as `onnx.save(save_as_external_data=True, all_tensors_to_one_file=True,
 * location=<file>_data)` writes it: every tensor of at least 1024 bytes appended to
 * `<file>_data` in order without padding, the rest inline; on request, or whenever a file would
 * pass the 2 GiB protobuf limit (here with a lowered limit); config.json tells transformers.js.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLocation, decodeTensorAsFloat32, externalDataInfo, loadModel } from '@zerolm/onnx';
import { buildModelGraph, generateModel, resolveSpec, type ModelSpec } from '../src';
import { writeModelFile } from '../src/writer';

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'zerolm-external-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const SPEC: ModelSpec = { family: 'llama', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 384, maxPositions: 64, seed: 6, variants: ['q8', 'fp16'] };

test('externalData writes every ONNX file with its weights in <file>_data, laid out as onnx.save does', () => {
  const inline = generateModel(SPEC, join(scratch, 'inline'));
  const external = generateModel({ ...SPEC, externalData: true }, join(scratch, 'external'));
  for (const file of ['model.onnx', 'model_quantized.onnx', 'model_fp16.onnx']) {
    expect(external.files[`onnx/${file}_data`]).toBe(statSync(join(external.dir, 'onnx', `${file}_data`)).size);
    expect(existsSync(join(inline.dir, 'onnx', `${file}_data`))).toBe(false);
    const a = loadModel(join(inline.dir, 'onnx', file));
    const b = loadModel(join(external.dir, 'onnx', file));
    let offset = 0;
    b.model.graph!.initializer.forEach((tensor, i) => {
      const twin = a.model.graph!.initializer[i]!;
      expect(tensor.name).toBe(twin.name);
      const bytes = twin.rawData!.byteLength;
      if (bytes >= 1024) {
        expect(tensor.dataLocation).toBe(DataLocation.EXTERNAL);
        expect(externalDataInfo(tensor)).toEqual({ location: `${file}_data`, offset, length: bytes });
        offset += bytes;
      } else {
        expect(tensor.dataLocation).toBeUndefined();
      }
      expect(b.decodeTensorAsFloat32(tensor)).toEqual(decodeTensorAsFloat32(twin));
    });
    expect(offset).toBe(statSync(join(external.dir, 'onnx', `${file}_data`)).size);
  }
  const config = JSON.parse(readFileSync(join(external.dir, 'config.json'), 'utf8'));
  expect(config['transformers.js_config']).toEqual({
    use_external_data_format: { 'model.onnx': 1, 'model_quantized.onnx': 1, 'model_fp16.onnx': 1 },
  });
  expect(JSON.parse(readFileSync(join(inline.dir, 'config.json'), 'utf8'))['transformers.js_config']).toBeUndefined();
});

test('a file that would pass the protobuf limit goes external on its own; a stale data file is removed', () => {
  const graph = buildModelGraph(resolveSpec(SPEC));
  const model = { irVersion: 7, opsetImport: [{ domain: '', version: 14 }], producerName: 'test', producerVersion: '1', graph };
  const file = join(scratch, 'auto.onnx');
  const small = writeModelFile(file, model);
  expect(small.externalData).toBeUndefined();
  const big = writeModelFile(file, model, { autoLimit: small.bytes });
  expect(big.externalData).toEqual({ location: 'auto.onnx_data', bytes: statSync(`${file}_data`).size });
  expect(big.bytes).toBe(statSync(file).size);
  expect(big.bytes).toBeLessThan(small.bytes);
  expect(writeModelFile(file, model, { autoLimit: small.bytes + 1 }).externalData).toBeUndefined();
  expect(existsSync(`${file}_data`)).toBe(false);
});
