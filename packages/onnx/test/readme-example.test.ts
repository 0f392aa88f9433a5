/** The README example, run as written (with a temporary folder instead of /tmp/linear). */
import * as path from 'path';
import {
  DataType,
  GraphIndex,
  encodeModel,
  loadModel,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  resolveMatMulWeight,
  saveModel,
} from '../src';
import { tempDir } from './helpers';

it('README example', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = path.join(dir, 'linear/model.onnx');
    const w = new Float32Array([1, 2, 3, 4, 5, 6]); // [in = 3, out = 2]
    const model = makeModel(
      makeGraph({
        name: 'linear',
        nodes: [makeNode('MatMul', ['x', 'w'], ['y'])],
        inputs: [makeValueInfo('x', DataType.FLOAT, ['batch', 3])],
        outputs: [makeValueInfo('y', DataType.FLOAT, ['batch', 2])],
        initializers: [makeTensor('w', [3, 2], w)],
      }),
    );
    const bytes = encodeModel(model);
    expect(bytes.length).toBeGreaterThan(0);
    saveModel(model, file, { externalData: { sizeThreshold: 0 } });

    const loaded = loadModel(file);
    const index = new GraphIndex(loaded.model.graph!);
    const weight = resolveMatMulWeight(index, index.nodesOfType('MatMul')[0]!, 1, { baseDir: loaded.baseDir });
    expect(weight?.shape).toEqual([3, 2]);
    expect(weight?.values()).toEqual(w);
    expect(loaded.model.graph?.initializer[0]?.rawData).toBeUndefined(); // read from model.onnx.data
  } finally {
    cleanup();
  }
});
