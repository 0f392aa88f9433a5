/**
 * Models whose weights live in external data (`onnx/<file>_data`, as onnx.save writes models
 * over 2 GiB): read in place, exported with their own data file in the same layout, config.json's
 * `transformers.js_config.use_external_data_format` stating what was written, and loaded back by
 * transformers.js; a source split in several chunks is read in place and written as one.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'fs';
import { join } from 'path';
import { encodeModel, externalDataInfo, isExternalTensor, loadModel, readExternalTensorBytes } from '@zerolm/onnx';
import { generateModel } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import { generateBothWays, loadHfModel, nonUniformPlan, tempRoot } from './export-helpers';

const root = tempRoot('export-external');
afterAll(() => root.remove());

test('an external-data source is exported with external data in the onnx.save layout and loads in transformers.js', async () => {
  const source = join(root.dir, 'llama-external');
  generateModel({ family: 'llama', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 384, maxPositions: 64, seed: 6, variants: ['q8'], externalData: true }, source);
  const plan = nonUniformPlan(loadHfModel(source).graph);
  const out = join(root.dir, 'llama-external-pruned');
  const result = await exportPrunedModel(source, plan, out);

  for (const file of ['model.onnx', 'model_quantized.onnx']) {
    const data = join(out, 'onnx', `${file}_data`);
    expect(result.onnxFiles.find((f) => f.file === `onnx/${file}`)?.externalData).toEqual({ file: `onnx/${file}_data`, bytes: statSync(data).size });
    const loaded = loadModel(join(out, 'onnx', file));
    let offset = 0;
    for (const tensor of loaded.model.graph!.initializer) {
      if (!isExternalTensor(tensor)) continue;
      const info = externalDataInfo(tensor);
      expect(info).toMatchObject({ location: `${file}_data`, offset });
      expect(info.length).toBeGreaterThanOrEqual(1024);
      offset += info.length!;
    }
    expect(offset).toBe(statSync(data).size);
  }
  expect(result.skipped).toEqual([]);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  expect(config['transformers.js_config']).toEqual({ use_external_data_format: { 'model.onnx': 1, 'model_quantized.onnx': 1 } });
  for (const dtype of ['fp32', 'q8'] as const) {
    const { cached, reference } = await generateBothWays(out, dtype);
    expect(cached).toEqual(reference);
  }
});

test('an inline source stays inline and its stale external-data record is dropped', async () => {
  const source = join(root.dir, 'llama-inline');
  generateModel({ family: 'llama', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 384, maxPositions: 64, seed: 6 }, source);
  const configFile = join(source, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  // A record naming a file that is not there (as after someone deleted the data file's model).
  config['transformers.js_config'] = { use_external_data_format: { 'model_q4.onnx': 1 }, device_config: { cpu: {} } };
  writeFileSync(configFile, JSON.stringify(config));
  const out = join(root.dir, 'llama-inline-pruned');
  await exportPrunedModel(source, nonUniformPlan(loadHfModel(source).graph), out);
  expect(existsSync(join(out, 'onnx', 'model.onnx_data'))).toBe(false);
  expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))['transformers.js_config']).toEqual({ device_config: { cpu: {} } });
});

test('a source whose external data is split in chunks (model.onnx_data, model.onnx_data_1) is read in place and written as one', async () => {
  const source = join(root.dir, 'llama-chunks');
  generateModel({ family: 'llama', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 384, maxPositions: 64, seed: 6, externalData: true }, source);
  // Re-split the data file: every other external tensor moves to a second chunk.
  const file = join(source, 'onnx', 'model.onnx');
  const loaded = loadModel(file);
  const chunks = [[], []] as Uint8Array[][];
  const sizes = [0, 0];
  let k = 0;
  for (const tensor of loaded.model.graph!.initializer) {
    if (!isExternalTensor(tensor)) continue;
    const info = externalDataInfo(tensor);
    const bytes = readExternalTensorBytes(tensor, loaded.baseDir, info.length!);
    const chunk = k++ % 2;
    tensor.externalData = [
      { key: 'location', value: chunk === 0 ? 'model.onnx_data' : 'model.onnx_data_1' },
      { key: 'offset', value: String(sizes[chunk]) },
      { key: 'length', value: String(bytes.byteLength) },
    ];
    chunks[chunk]!.push(bytes);
    sizes[chunk]! += bytes.byteLength;
  }
  writeFileSync(join(source, 'onnx', 'model.onnx_data'), Buffer.concat(chunks[0]!));
  writeFileSync(join(source, 'onnx', 'model.onnx_data_1'), Buffer.concat(chunks[1]!));
  writeFileSync(file, encodeModel(loaded.model));
  const configFile = join(source, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  config['transformers.js_config'] = { use_external_data_format: { 'model.onnx': 2 } };
  writeFileSync(configFile, JSON.stringify(config));
  expect((await generateBothWays(source, 'fp32')).cached.length).toBeGreaterThan(0); // transformers.js reads both chunks

  const out = join(root.dir, 'llama-chunks-pruned');
  const result = await exportPrunedModel(source, nonUniformPlan(loadHfModel(source).graph), out);
  expect(result.skipped).toEqual([]);
  expect(existsSync(join(out, 'onnx', 'model.onnx_data_1'))).toBe(false);
  expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))['transformers.js_config']).toEqual({ use_external_data_format: { 'model.onnx': 1 } });
  const { cached, reference } = await generateBothWays(out, 'fp32');
  expect(cached).toEqual(reference);
});
