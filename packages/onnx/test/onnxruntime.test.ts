/**
 * Models written by this package run in onnxruntime (the reference consumer), from bytes and,
 * with external data, from a path.
 */
import { Rng } from '@zerolm/core';
import * as ort from 'onnxruntime-node';
import * as path from 'path';
import { encodeModel, loadModel, saveModel } from '../src';
import { buildMlp, mlpReference, randomFloats, tempDir } from './helpers';

async function runMlp(session: ort.InferenceSession, x: Float32Array, rows: number, inputSize: number): Promise<Float32Array> {
  const result = await session.run({ x: new ort.Tensor('float32', x, [rows, inputSize]) });
  const y = result['y'];
  if (!y) throw new Error('no output y');
  return y.data as Float32Array;
}

function expectClose(actual: Float32Array, expected: Float64Array): void {
  expect(actual.length).toBe(expected.length);
  // float32 accumulation in onnxruntime against a float64 reference
  const worst = Math.max(...expected.map((e, i) => Math.abs((actual[i] as number) - e) / (1 + Math.abs(e))));
  expect(worst).toBeLessThan(1e-5);
}

describe('onnxruntime runs models written by this package', () => {
  it('MatMul + Add + Relu from bytes gives the reference numbers', async () => {
    const mlp = buildMlp('ort');
    const rows = 5;
    const x = randomFloats(new Rng('ort-x'), rows * mlp.inputSize);
    const session = await ort.InferenceSession.create(encodeModel(mlp.model));
    try {
      const y = await runMlp(session, x, rows, mlp.inputSize);
      const reference = mlpReference(mlp, x, rows);
      expectClose(y, reference);
      // some hidden units were clipped, so the Relu in the graph mattered
      const withoutRelu = mlpReference(mlp, x, rows, false);
      expect(withoutRelu.some((v, i) => Math.abs(v - (reference[i] as number)) > 1e-3)).toBe(true);
    } finally {
      await session.release();
    }
  });

  it('a model saved with external data loads from its path', async () => {
    const mlp = buildMlp('ort-external', 64, 48, 8);
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'model.onnx');
      saveModel(mlp.model, file, { externalData: { location: 'model.onnx_data', sizeThreshold: 256 } });
      const loaded = loadModel(file);
      expect(loaded.model.graph?.initializer.filter((t) => t.dataLocation === 1).map((t) => t.name)).toEqual(['w1', 'w2']);
      const session = await ort.InferenceSession.create(file);
      try {
        const rows = 3;
        const x = randomFloats(new Rng('ort-external-x'), rows * mlp.inputSize);
        expectClose(await runMlp(session, x, rows, mlp.inputSize), mlpReference(mlp, x, rows));
      } finally {
        await session.release();
      }
    } finally {
      cleanup();
    }
  });
});
