import * as fs from 'fs';
import * as path from 'path';
import {
  DataLocation,
  DataType,
  OnnxError,
  OnnxExternalDataError,
  OnnxFormatError,
  decodeModel,
  decodeTensor,
  encodeModel,
  externalDataInfo,
  loadModel,
  makeTensor,
  newTensorProto,
  readExternalTensorBytes,
  resolveExternalPath,
  saveModel,
  type TensorProto,
} from '../src';
import { buildMlp, tempDir } from './helpers';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

function external(name: string, dims: number[], location: string, offset?: number, length?: number): TensorProto {
  const entries = [{ key: 'location', value: location }];
  if (offset !== undefined) entries.push({ key: 'offset', value: String(offset) });
  if (length !== undefined) entries.push({ key: 'length', value: String(length) });
  return newTensorProto({ name, dataType: DataType.FLOAT, dims, dataLocation: DataLocation.EXTERNAL, externalData: entries });
}

function leftovers(folder: string): string[] {
  return fs.readdirSync(folder).filter((f) => f.includes('.tmp-'));
}

describe('saveModel / loadModel', () => {
  it('writes a model that loads back equal, leaving no temporary files', () => {
    const { model } = buildMlp();
    const file = path.join(dir, 'mlp.onnx');
    saveModel(model, file);
    const loaded = loadModel(file);
    expect(loaded.path).toBe(file);
    expect(loaded.baseDir).toBe(dir);
    expect(loaded.model).toEqual(decodeModel(encodeModel(model)));
    expect(leftovers(dir)).toEqual([]);
  });

  it('replaces an existing file atomically and keeps the old one when encoding fails', () => {
    const file = path.join(dir, 'mlp.onnx');
    saveModel(buildMlp('first').model, file);
    const before = fs.readFileSync(file);
    const broken = buildMlp('second').model;
    // an external tensor without sourceDir cannot be inlined: the save must fail cleanly
    broken.graph?.initializer.push(external('ext', [4], 'missing.bin'));
    expect(() => saveModel(broken, file)).toThrow(OnnxExternalDataError);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
    saveModel(buildMlp('second').model, file);
    expect(fs.readFileSync(file).equals(before)).toBe(false);
  });

  it('moves large initializers to an aligned external data file and reads them back lazily', () => {
    const mlp = buildMlp('ext', 64, 32, 16);
    const file = path.join(dir, 'model.onnx');
    saveModel(mlp.model, file, { externalData: { sizeThreshold: 1000 } });
    const dataFile = path.join(dir, 'model.onnx.data');
    expect(fs.existsSync(dataFile)).toBe(true);
    expect(leftovers(dir)).toEqual([]);

    const loaded = loadModel(file);
    const byName = new Map(loaded.model.graph?.initializer.map((t) => [t.name, t]));
    const w1 = byName.get('w1') as TensorProto;
    const w2 = byName.get('w2') as TensorProto;
    const b1 = byName.get('b1') as TensorProto;
    expect(w1.dataLocation).toBe(DataLocation.EXTERNAL);
    expect(w1.rawData).toBeUndefined();
    expect(externalDataInfo(w1)).toEqual({ location: 'model.onnx.data', offset: 0, length: 64 * 32 * 4 });
    expect(externalDataInfo(w2).offset % 4096).toBe(0);
    expect(b1.dataLocation).toBeUndefined(); // 128 bytes: below the threshold, stays inline
    expect(loaded.decodeTensor(w1)).toEqual(mlp.w1);
    expect(loaded.decodeTensor(w2)).toEqual(mlp.w2);
    expect(decodeTensor(w2, { baseDir: dir })).toEqual(mlp.w2);
    expect(fs.statSync(file).size).toBeLessThan(2000);
    // the caller's model is untouched
    expect(mlp.model.graph?.initializer[0]?.rawData?.byteLength).toBe(64 * 32 * 4);
  });

  it('re-saves a model with external data elsewhere, inlined or external, from its source folder', () => {
    const mlp = buildMlp('resave', 64, 32, 16);
    saveModel(mlp.model, path.join(dir, 'a.onnx'), { externalData: { location: 'weights/a.bin', sizeThreshold: 0 } });
    const loaded = loadModel(path.join(dir, 'a.onnx'));

    const other = tempDir();
    try {
      saveModel(loaded.model, path.join(other.dir, 'inline.onnx'), { sourceDir: loaded.baseDir });
      const inline = loadModel(path.join(other.dir, 'inline.onnx'));
      expect(inline.model.graph?.initializer.every((t) => t.dataLocation === undefined && t.rawData)).toBe(true);
      expect(inline.decodeTensor(inline.model.graph?.initializer[0] as TensorProto)).toEqual(mlp.w1);

      saveModel(loaded.model, path.join(other.dir, 'copy.onnx'), { sourceDir: loaded.baseDir, externalData: true });
      const copy = loadModel(path.join(other.dir, 'copy.onnx'));
      expect(copy.decodeTensor(copy.model.graph?.initializer[2] as TensorProto)).toEqual(mlp.w2);
      expect(fs.existsSync(path.join(other.dir, 'copy.onnx.data'))).toBe(true);
    } finally {
      other.cleanup();
    }
  });

  it('converts typed-field initializers to raw bytes when moving them out', () => {
    const model = buildMlp().model;
    model.graph?.initializer.push(newTensorProto({ name: 'typed', dataType: DataType.FLOAT, dims: [300], floatData: Array.from({ length: 300 }, (_, i) => i / 4) }));
    const file = path.join(dir, 'typed.onnx');
    saveModel(model, file, { externalData: { sizeThreshold: 1000 } });
    const loaded = loadModel(file);
    const typed = loaded.model.graph?.initializer.find((t) => t.name === 'typed') as TensorProto;
    expect(typed.floatData).toEqual([]);
    expect(typed.dataLocation).toBe(DataLocation.EXTERNAL);
    expect(loaded.decodeTensor(typed)).toEqual(Float32Array.from({ length: 300 }, (_, i) => i / 4));
  });

  it('reports unreadable and invalid model files clearly', () => {
    expect(() => loadModel(path.join(dir, 'nope.onnx'))).toThrow(/cannot read ONNX model .*nope\.onnx: file not found/);
    expect(() => loadModel(dir)).toThrow(OnnxError);
    fs.writeFileSync(path.join(dir, 'text.onnx'), 'this is not protobuf at all\n');
    expect(() => loadModel(path.join(dir, 'text.onnx'))).toThrow(/^not a valid ONNX model \(.*text\.onnx\): /);
  });
});

describe('external data reading', () => {
  const values = new Float32Array([1, 2, 3, 4, 5, 6]);
  beforeEach(() => {
    const bytes = new Uint8Array(100);
    bytes.set(new Uint8Array(values.buffer), 10); // unaligned offset on purpose
    fs.writeFileSync(path.join(dir, 'data.bin'), bytes);
  });

  it('reads the exact byte range at any offset', () => {
    expect(decodeTensor(external('t', [2, 3], 'data.bin', 10, 24), { baseDir: dir })).toEqual(values);
    expect(decodeTensor(external('t', [6], 'data.bin', 10), { baseDir: dir })).toEqual(values);
    expect(decodeTensor(external('t', [2], './data.bin', 18), { baseDir: dir })).toEqual(new Float32Array([3, 4]));
  });

  it('fails clearly for a missing file, a range past the end, and a length that disagrees with the dims', () => {
    expect(() => decodeTensor(external('t', [6], 'gone.bin'), { baseDir: dir })).toThrow(OnnxExternalDataError);
    expect(() => decodeTensor(external('t', [6], 'gone.bin'), { baseDir: dir })).toThrow(/tensor 't': external data file .*gone\.bin not found/);
    expect(() => decodeTensor(external('t', [6], 'data.bin', 90), { baseDir: dir })).toThrow(
      /tensor 't': external data range 90\.\.114 lies past the end of .*data\.bin \(100 bytes\)/,
    );
    expect(() => decodeTensor(external('t', [6], 'data.bin', 0, 20), { baseDir: dir })).toThrow(OnnxFormatError);
    expect(() => decodeTensor(external('t', [6], 'data.bin', 0, 20), { baseDir: dir })).toThrow(/length 20 does not match the 24 bytes/);
    expect(() => decodeTensor(external('t', [6], 'data.bin'))).toThrow(/pass the model folder \(baseDir\)/);
  });

  it('refuses locations that leave the model folder', () => {
    const inner = path.join(dir, 'model');
    fs.mkdirSync(inner);
    expect(() => decodeTensor(external('t', [6], '../data.bin', 10), { baseDir: inner })).toThrow(/escapes the model folder/);
    expect(() => decodeTensor(external('t', [6], 'sub/../../data.bin', 10), { baseDir: inner })).toThrow(/escapes the model folder/);
    expect(() => decodeTensor(external('t', [6], path.join(dir, 'data.bin'), 10), { baseDir: inner })).toThrow(/is absolute/);
    expect(() => resolveExternalPath(inner, '.')).toThrow(/escapes the model folder/);
    expect(resolveExternalPath(inner, 'sub/../w.bin')).toBe(path.join(inner, 'w.bin'));
  });

  it('rejects malformed external_data entries', () => {
    const bad = external('t', [6], 'data.bin');
    bad.externalData.push({ key: 'offset', value: '-4' });
    expect(() => decodeTensor(bad, { baseDir: dir })).toThrow("tensor 't': external data offset '-4' is not a non-negative integer");
    const noLocation = newTensorProto({ name: 't', dataType: DataType.FLOAT, dims: [1], dataLocation: DataLocation.EXTERNAL });
    expect(() => decodeTensor(noLocation, { baseDir: dir })).toThrow("tensor 't': external data has no location");
  });

  it('reads into a fresh aligned buffer', () => {
    const bytes = readExternalTensorBytes(external('t', [6], 'data.bin', 10, 24), dir, 24);
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.byteLength).toBe(24);
  });
});

describe('makeTensor round trip through a saved file', () => {
  it('keeps int64, int8, uint8 and float16 initializers', () => {
    const model = buildMlp().model;
    model.graph?.initializer.push(
      makeTensor('shape', [2], new BigInt64Array([-1n, 9223372036854775807n])),
      makeTensor('q', [3], new Int8Array([-128, 0, 127])),
      makeTensor('u', [2], new Uint8Array([0, 255])),
      makeTensor('h', [2], new Float32Array([0.5, -1]), DataType.FLOAT16),
    );
    const file = path.join(dir, 'types.onnx');
    saveModel(model, file);
    const loaded = loadModel(file);
    const get = (name: string): TensorProto => loaded.model.graph?.initializer.find((t) => t.name === name) as TensorProto;
    expect(loaded.decodeTensor(get('shape'))).toEqual(new BigInt64Array([-1n, 9223372036854775807n]));
    expect(loaded.decodeTensor(get('q'))).toEqual(new Int8Array([-128, 0, 127]));
    expect(loaded.decodeTensor(get('u'))).toEqual(new Uint8Array([0, 255]));
    expect(get('h').dataType).toBe(DataType.FLOAT16);
    expect(loaded.decodeTensor(get('h'))).toEqual(new Float32Array([0.5, -1]));
  });
});
