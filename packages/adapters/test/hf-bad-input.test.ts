import { scoreReport, Rng } from '@zerolm/core';
import { decodeModel, encodeModel, loadModel, saveModel } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadHfModel } from '../src';

let tmp: string;
beforeAll(() => {
  ensureFixtures(['bert-tiny', 'llama-tiny', 'distilbert-tiny']);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-bad-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture folder whose files the test may then damage. */
function copyFixture(name: string, as: string): string {
  const dir = path.join(tmp, as);
  fs.cpSync(fixturePath(name), dir, { recursive: true });
  return dir;
}

/** An error we raised on purpose: any Error but the engine's own (TypeError, RangeError, ...). */
function expectCleanError(fn: () => unknown, pattern?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(Error);
  expect((caught as Error).constructor.name).not.toMatch(/^(TypeError|RangeError|ReferenceError|SyntaxError|InternalError)$/);
  if (pattern) expect((caught as Error).message).toMatch(pattern);
}

describe('bad model folders give clear errors', () => {
  it('a folder without config.json', () => {
    const dir = copyFixture('bert-tiny', 'no-config');
    fs.rmSync(path.join(dir, 'config.json'));
    expectCleanError(() => loadHfModel(dir), /no config.json/);
  });

  it('a folder without the ONNX file of the dtype', () => {
    expectCleanError(() => loadHfModel(fixturePath('distilbert-tiny'), { dtype: 'q8' }), /no onnx\/model_quantized.onnx .*available: fp32/);
  });

  it('an unsupported family', () => {
    const dir = copyFixture('bert-tiny', 't5');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 't5' }));
    expectCleanError(() => loadHfModel(dir), /unsupported model family "t5".*supported: bert, roberta/);
  });

  it('a config.json whose head count contradicts the graph', () => {
    const dir = copyFixture('bert-tiny', 'wrong-heads');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, num_attention_heads: 2 * config.num_attention_heads }));
    expectCleanError(() => loadHfModel(dir), /contradicts the graph/);
  });

  it('a decoder config.json whose key-value heads contradict the cache inputs', () => {
    const dir = copyFixture('llama-tiny', 'wrong-kv');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, num_key_value_heads: 4 }));
    expectCleanError(() => loadHfModel(dir), /contradicts the graph/);
  });

  it('NaN or Inf in a weight', () => {
    for (const bad of [NaN, Infinity]) {
      const dir = copyFixture('bert-tiny', `nan-${bad}`);
      const file = path.join(dir, 'onnx/model.onnx');
      const { model } = loadModel(file);
      const weight = model.graph!.initializer.find((t) => t.name?.startsWith('onnx::MatMul'))!;
      const values = new Float32Array(weight.rawData!.slice().buffer);
      values[3] = bad;
      weight.rawData = new Uint8Array(values.buffer);
      saveModel(model, file);
      expectCleanError(() => scoreReport(loadHfModel(dir).graph), /must be finite|not finite/);
    }
  });

  it('a missing external-data file', () => {
    const dir = copyFixture('bert-tiny', 'external');
    const file = path.join(dir, 'onnx/model.onnx');
    saveModel(loadModel(file).model, file, { externalData: { location: 'model.onnx_data', sizeThreshold: 0 } });
    expect(scoreReport(loadHfModel(dir).graph).score).toBeGreaterThan(0);
    fs.rmSync(path.join(dir, 'onnx/model.onnx_data'));
    expectCleanError(() => scoreReport(loadHfModel(dir).graph), /model.onnx_data/);
  });

  it('truncated ONNX bytes', () => {
    const dir = copyFixture('bert-tiny', 'truncated');
    const file = path.join(dir, 'onnx/model.onnx');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 3)));
    expectCleanError(() => scoreReport(loadHfModel(dir).graph));
  });

  it('survives 200 randomly corrupted variants: a clean error or a correct read, never a crash', () => {
    const rng = new Rng('corrupt-hf');
    const outcomes = { read: 0, error: 0 };
    const sources = ['bert-tiny', 'llama-tiny'].map((name) => ({
      name,
      bytes: new Uint8Array(fs.readFileSync(path.join(fixturePath(name), 'onnx/model.onnx'))),
    }));
    for (let i = 0; i < 200; i++) {
      const { name, bytes } = sources[i % sources.length]!;
      const damaged = bytes.slice();
      let variant: Uint8Array = damaged;
      switch (i % 3) {
        case 0: // bit flips
          for (let k = 0; k < 1 + rng.int(8); k++) {
            const at = rng.int(damaged.length);
            damaged[at] = damaged[at]! ^ (1 << rng.int(8));
          }
          break;
        case 1: // a run of overwritten bytes
          for (let k = 0, at = rng.int(damaged.length); k < 16 && at + k < damaged.length; k++) damaged[at + k] = rng.int(256);
          break;
        default: // truncation
          variant = damaged.subarray(0, rng.int(damaged.length));
      }
      const dir = path.join(tmp, `fuzz-${i}`);
      fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
      fs.copyFileSync(path.join(fixturePath(name), 'config.json'), path.join(dir, 'config.json'));
      fs.writeFileSync(path.join(dir, 'onnx/model.onnx'), variant);
      try {
        const report = scoreReport(loadHfModel(dir).graph);
        expect(Number.isFinite(report.score)).toBe(true);
        outcomes.read++;
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        if (/^(TypeError|RangeError|ReferenceError|SyntaxError)$/.test((error as Error).constructor.name)) {
          throw new Error(`variant ${i} (${name}) crashed the reader: ${(error as Error).stack}`);
        }
        outcomes.error++;
      }
      fs.rmSync(dir, { recursive: true });
    }
    expect(outcomes.read + outcomes.error).toBe(200);
    expect(outcomes.error).toBeGreaterThan(0);
  });
});

it('re-encodes a fixture byte for byte (the reader loses nothing)', () => {
  const bytes = new Uint8Array(fs.readFileSync(path.join(fixturePath('bert-tiny'), 'onnx/model.onnx')));
  expect(Buffer.from(encodeModel(decodeModel(bytes))).equals(Buffer.from(bytes))).toBe(true);
});
