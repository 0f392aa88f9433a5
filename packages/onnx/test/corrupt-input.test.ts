/**
 * Corrupted model bytes must end in an `OnnxError` (or decode to a model whose tensors decode or
 * fail with an `OnnxError`): never another exception, a huge allocation or a hang.
 */
import { Rng } from '@zerolm/core';
import * as fs from 'fs';
import * as path from 'path';
import {
  DataType,
  GraphIndex,
  OnnxError,
  decodeModel,
  decodeTensor,
  encodeModel,
  makeNode,
  makeTensor,
  newTensorProto,
  resolveMatMulWeight,
  type GraphProto,
  type ModelProto,
  type TensorProto,
} from '../src';
import { buildMlp, describeShared, sharedPaths, tempDir } from './helpers';

type Mutation = { kind: string; apply: (bytes: Uint8Array, rng: Rng) => Uint8Array };

const MUTATIONS: Mutation[] = [
  {
    kind: 'bit flips',
    apply: (bytes, rng) => {
      const out = bytes.slice();
      for (let n = 1 + rng.int(8); n > 0; n--) {
        const at = rng.int(out.length);
        out[at] = (out[at] as number) ^ (1 << rng.int(8));
      }
      return out;
    },
  },
  {
    kind: 'byte overwrites',
    apply: (bytes, rng) => {
      const out = bytes.slice();
      for (let n = 1 + rng.int(4); n > 0; n--) out[rng.int(out.length)] = rng.int(256);
      return out;
    },
  },
  {
    kind: 'random run',
    apply: (bytes, rng) => {
      const out = bytes.slice();
      const at = rng.int(out.length);
      for (let i = at; i < Math.min(out.length, at + 1 + rng.int(16)); i++) out[i] = rng.int(256);
      return out;
    },
  },
  {
    kind: 'huge varint',
    apply: (bytes, rng) => {
      // 0xff... continuation bytes read as enormous lengths and counts
      const out = bytes.slice();
      const at = rng.int(out.length);
      for (let i = at; i < Math.min(out.length, at + 4 + rng.int(6)); i++) out[i] = 0xff;
      return out;
    },
  },
  { kind: 'truncation', apply: (bytes, rng) => bytes.slice(0, rng.int(bytes.length)) },
];

/** Every tensor a model carries: initializers, sparse parts, tensor attributes, recursively. */
function tensorsOf(graph: GraphProto): TensorProto[] {
  const out: TensorProto[] = [...graph.initializer];
  for (const sparse of graph.sparseInitializer) {
    if (sparse.values) out.push(sparse.values);
    if (sparse.indices) out.push(sparse.indices);
  }
  for (const node of graph.node) {
    for (const attribute of node.attribute) {
      if (attribute.t) out.push(attribute.t);
      out.push(...attribute.tensors);
      if (attribute.g) out.push(...tensorsOf(attribute.g));
      for (const g of attribute.graphs) out.push(...tensorsOf(g));
    }
  }
  return out;
}

/** Runs everything a consumer would do with a decoded model; only OnnxErrors may escape. */
function exercise(bytes: Uint8Array, baseDir: string): 'rejected' | 'decoded' {
  let model: ModelProto;
  try {
    model = decodeModel(bytes);
  } catch (error) {
    if (error instanceof OnnxError) return 'rejected';
    throw error;
  }
  const graph = model.graph as GraphProto;
  for (const tensor of tensorsOf(graph)) {
    try {
      decodeTensor(tensor, { baseDir });
    } catch (error) {
      if (!(error instanceof OnnxError)) throw error;
    }
  }
  const index = new GraphIndex(graph);
  for (const step of [
    () => index.topologicalOrder(),
    ...graph.node.filter((n) => n.opType === 'MatMul').map((n) => () => resolveMatMulWeight(index, n, 1, { baseDir })?.values()),
  ]) {
    try {
      step();
    } catch (error) {
      if (!(error instanceof OnnxError)) throw error;
    }
  }
  return 'decoded';
}

function fuzz(original: Uint8Array, variants: number, seed: string, baseDir: string): Record<'rejected' | 'decoded', number> {
  const rng = new Rng(seed);
  const outcomes = { rejected: 0, decoded: 0 };
  for (let i = 0; i < variants; i++) {
    const mutation = MUTATIONS[i % MUTATIONS.length] as Mutation;
    const variant = mutation.apply(original, rng);
    try {
      outcomes[exercise(variant, baseDir)]++;
    } catch (error) {
      throw new Error(`variant ${i} (${mutation.kind}, seed '${seed}') escaped with ${String(error)}`, { cause: error });
    }
  }
  return outcomes;
}

/** The MLP plus tensors in every storage form, so corruption hits each decoding path. */
function fuzzModel(): ModelProto {
  const { model } = buildMlp('fuzz', 16, 24, 8);
  const graph = model.graph as GraphProto;
  graph.initializer.push(
    newTensorProto({ name: 'typed_f', dataType: DataType.FLOAT, dims: [6], floatData: [1, 2, 3, 4, 5, 6] }),
    newTensorProto({ name: 'typed_i64', dataType: DataType.INT64, dims: [3], int64Data: [1, -1, 9223372036854775807n] }),
    newTensorProto({ name: 'typed_h', dataType: DataType.FLOAT16, dims: [2], int32Data: [0x3c00, 0xc000] }),
    makeTensor('q', [4, 4], new Int8Array(16).fill(3)),
    makeTensor('h', [4], new Float32Array([1, 2, 3, 4]), DataType.FLOAT16),
    newTensorProto({
      name: 'ext',
      dataType: DataType.FLOAT,
      dims: [4],
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'w.bin' },
        { key: 'offset', value: '0' },
      ],
    }),
  );
  graph.node.push(makeNode('Constant', [], ['shape'], { value: makeTensor('', [2], new BigInt64Array([-1n, 8n])) }));
  return model;
}

describe('corrupted input', () => {
  let dir: string;
  let cleanup: () => void;
  beforeAll(() => {
    ({ dir, cleanup } = tempDir());
    fs.writeFileSync(path.join(dir, 'w.bin'), new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
  });
  afterAll(() => cleanup());

  it('the intact fuzz model decodes completely', () => {
    expect(exercise(encodeModel(fuzzModel()), dir)).toBe('decoded');
  });

  it('600 corrupted variants of a small model end in OnnxError or a usable model', () => {
    const bytes = encodeModel(fuzzModel());
    expect(bytes.length).toBeLessThan(8000);
    const outcomes = fuzz(bytes, 600, 'small-model', dir);
    // both outcomes occur, so the corruption reaches structure as well as data
    expect(outcomes.rejected).toBeGreaterThan(60);
    expect(outcomes.decoded).toBeGreaterThan(60);
  });
});

describeShared(
  'corrupted real model',
  () => {
    it('40 corrupted variants of kjv-llama-tiny end in OnnxError or a usable model', () => {
      const file = path.join(sharedPaths.modelsDir, 'kjv-llama-tiny/onnx/model.onnx');
      const bytes = new Uint8Array(fs.readFileSync(file));
      const outcomes = fuzz(bytes, 40, 'llama', path.dirname(file));
      expect(outcomes.rejected + outcomes.decoded).toBe(40);
    });
  },
  [sharedPaths.modelsDir],
);
