/** Small models built with the package's own writer, shared by the tests. */
import { Rng } from '@zerolm/core';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DataType, makeGraph, makeModel, makeNode, makeTensor, makeValueInfo, type ModelProto } from '../src';

export interface Mlp {
  model: ModelProto;
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
}

export function randomFloats(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * rng.normal();
  return out;
}

/** y = relu(x W1 + b1) W2 + b2, with a Constant node scaling the output by 1 (exercises tensor attributes). */
export function buildMlp(seed: number | string = 'mlp', inputSize = 4, hiddenSize = 8, outputSize = 3): Mlp {
  const rng = new Rng(seed);
  const w1 = randomFloats(rng, inputSize * hiddenSize, 0.5);
  const b1 = randomFloats(rng, hiddenSize, 0.1);
  const w2 = randomFloats(rng, hiddenSize * outputSize, 0.5);
  const b2 = randomFloats(rng, outputSize, 0.1);
  const graph = makeGraph({
    name: 'mlp',
    nodes: [
      makeNode('MatMul', ['x', 'w1'], ['h0'], {}, { name: 'fc1/MatMul' }),
      makeNode('Add', ['h0', 'b1'], ['h1'], {}, { name: 'fc1/Add' }),
      makeNode('Relu', ['h1'], ['h2'], {}, { name: 'relu' }),
      makeNode('MatMul', ['h2', 'w2'], ['h3'], {}, { name: 'fc2/MatMul' }),
      makeNode('Add', ['h3', 'b2'], ['h4'], {}, { name: 'fc2/Add' }),
      makeNode('Constant', [], ['one'], { value: makeTensor('', [], new Float32Array([1])) }, { name: 'one' }),
      makeNode('Mul', ['h4', 'one'], ['y'], {}, { name: 'scale' }),
    ],
    inputs: [makeValueInfo('x', DataType.FLOAT, ['batch', inputSize])],
    outputs: [makeValueInfo('y', DataType.FLOAT, ['batch', outputSize])],
    initializers: [
      makeTensor('w1', [inputSize, hiddenSize], w1),
      makeTensor('b1', [hiddenSize], b1),
      makeTensor('w2', [hiddenSize, outputSize], w2),
      makeTensor('b2', [outputSize], b2),
    ],
  });
  return { model: makeModel(graph), w1, b1, w2, b2, inputSize, hiddenSize, outputSize };
}

/** The MLP computed directly, in float64, for `rows` inputs of `inputSize` values. */
export function mlpReference(mlp: Mlp, x: Float32Array, rows: number, relu = true): Float64Array {
  const { inputSize: n, hiddenSize: h, outputSize: m } = mlp;
  const y = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) {
    const hidden = new Float64Array(h);
    for (let j = 0; j < h; j++) {
      let s = mlp.b1[j] as number;
      for (let i = 0; i < n; i++) s += (x[r * n + i] as number) * (mlp.w1[i * h + j] as number);
      hidden[j] = relu ? Math.max(0, s) : s;
    }
    for (let k = 0; k < m; k++) {
      let s = mlp.b2[k] as number;
      for (let j = 0; j < h; j++) s += (hidden[j] as number) * (mlp.w2[j * m + k] as number);
      y[r * m + k] = s;
    }
  }
  return y;
}

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'zerolm-onnx-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export { describeShared, sharedPaths } from '../../adapters/test/shared-data';
