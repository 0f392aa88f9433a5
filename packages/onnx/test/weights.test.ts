/**
 * Weight resolution for the storage patterns real exports use. Where onnxruntime can run the
 * pattern, it is the judge: feeding the identity matrix to `x · W` returns W as the runtime
 * dequantizes it, which must match `values()` to float32 rounding.
 */
import { Rng } from '@zerolm/core';
import * as ort from 'onnxruntime-node';
import * as path from 'path';
import {
  DataType,
  GraphIndex,
  OnnxError,
  decodeTensor,
  describeWeight,
  encodeModel,
  loadModel,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  resolveMatMulWeight,
  resolveWeight,
  transposeLastTwo,
  type GraphProto,
  type NodeProto,
  type ResolvedWeight,
  type TensorProto,
} from '../src';
import { describeShared, randomFloats, sharedPaths } from './helpers';

const K = 6; // input features
const N = 4; // output features

function identity(n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

function randomInts(rng: Rng, n: number, low: number, high: number): number[] {
  return Array.from({ length: n }, () => low + rng.int(high - low + 1));
}

/** A graph computing y from x [K, K] with the given nodes; the last node must output `y`. */
function graphOf(nodes: NodeProto[], initializers: TensorProto[], outputShape: number[] = [K, N]): GraphProto {
  return makeGraph({
    name: 'weights',
    nodes,
    inputs: [makeValueInfo('x', DataType.FLOAT, [K, K])],
    outputs: [makeValueInfo('y', DataType.FLOAT, outputShape)],
    initializers,
  });
}

/** Runs the graph on the identity matrix: the output is the weight as onnxruntime applies it. */
async function runtimeWeight(graph: GraphProto, microsoft = false): Promise<Float32Array> {
  const opsetImports = [{ domain: '', version: 17 }];
  if (microsoft) opsetImports.push({ domain: 'com.microsoft', version: 1 });
  // Unoptimized: with fusions on, onnxruntime multiplies x by the integers first and scales
  // afterwards, which rounds differently from the operator definitions.
  const session = await ort.InferenceSession.create(encodeModel(makeModel(graph, { opsetImports })), {
    graphOptimizationLevel: 'disabled',
  });
  try {
    const result = await session.run({ x: new ort.Tensor('float32', identity(K), [K, K]) });
    return (result['y'] as ort.Tensor).data as Float32Array;
  } finally {
    await session.release();
  }
}

function expectAllClose(actual: Float32Array, expected: ArrayLike<number>, tolerance = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i] as number;
    worst = Math.max(worst, Math.abs((actual[i] as number) - e) / Math.max(1e-6, Math.abs(e)));
  }
  expect(worst).toBeLessThan(tolerance);
}

function bytesOf(values: ArrayBufferView): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function matmulNode(graph: GraphProto, opType = 'MatMul'): NodeProto {
  const node = graph.node.find((n) => n.opType === opType);
  if (!node) throw new Error(`no ${opType}`);
  return node;
}

/** Column norms computed from values(), the reference for the streaming columnSquaredNorms(). */
function expectColumnNorms(weight: ResolvedWeight): void {
  const values = weight.values();
  const [rows, cols] = weight.shape as [number, number];
  const expected = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) expected[c]! += (values[r * cols + c] as number) ** 2;
  const actual = weight.columnSquaredNorms();
  expect(actual.length).toBe(cols);
  actual.forEach((v, c) => expect(v).toBeCloseTo(expected[c]!, 5));
}

/** Every resolved weight of these tests also checks its streaming column norms against values(). */
function resolved(graph: GraphProto, opType = 'MatMul', inputIndex = 1): ResolvedWeight {
  const weight = resolveMatMulWeight(new GraphIndex(graph), matmulNode(graph, opType), inputIndex);
  if (!weight) throw new Error('weight not resolved');
  if (weight.shape.length === 2) expectColumnNorms(weight);
  return weight;
}

describe('float weights', () => {
  const w = randomFloats(new Rng('w'), K * N);

  it('resolves an initializer as stored [in, out]', async () => {
    const graph = graphOf([makeNode('MatMul', ['x', 'w'], ['y'])], [makeTensor('w', [K, N], w)]);
    const weight = resolved(graph);
    expect(weight).toMatchObject({ consumedName: 'w', dataName: 'w', dataSource: 'initializer', dataType: DataType.FLOAT, storedShape: [K, N], shape: [K, N], transposed: false, path: [] });
    expect(weight.quantization).toBeUndefined();
    expect(weight.values()).toEqual(w);
    expect(weight.values()).toEqual(await runtimeWeight(graph));
  });

  it('follows a Transpose of a weight stored [out, in] and reports the orientation', async () => {
    const stored = transposeLastTwo(w, [K, N]); // [N, K]
    const graph = graphOf(
      [makeNode('Transpose', ['w_t'], ['w_view'], { perm: [1, 0] }, { name: 't' }), makeNode('MatMul', ['x', 'w_view'], ['y'])],
      [makeTensor('w_t', [N, K], stored)],
    );
    const weight = resolved(graph);
    expect(weight).toMatchObject({ consumedName: 'w_view', dataName: 'w_t', storedShape: [N, K], shape: [K, N], transposed: true });
    expect(weight.path.map((n) => n.name)).toEqual(['t']);
    expect(weight.storedValues()).toEqual(stored);
    expect(weight.values()).toEqual(w);
    expect(weight.values()).toEqual(await runtimeWeight(graph));
  });

  it('applies Gemm transB (and cancels it against a Transpose)', async () => {
    const stored = transposeLastTwo(w, [K, N]);
    const gemm = graphOf([makeNode('Gemm', ['x', 'w_t'], ['y'], { transB: 1 })], [makeTensor('w_t', [N, K], stored)]);
    const weight = resolved(gemm, 'Gemm');
    expect(weight).toMatchObject({ storedShape: [N, K], shape: [K, N], transposed: true });
    expect(weight.values()).toEqual(w);
    expect(weight.values()).toEqual(await runtimeWeight(gemm));

    const twice = graphOf(
      [makeNode('Transpose', ['w'], ['w_t'], { perm: [1, 0] }), makeNode('Gemm', ['x', 'w_t'], ['y'], { transB: 1 })],
      [makeTensor('w', [K, N], w)],
    );
    expect(resolved(twice, 'Gemm')).toMatchObject({ transposed: false, shape: [K, N] });
    expect(resolved(twice, 'Gemm').values()).toEqual(await runtimeWeight(twice));
  });

  it('follows Cast from float16 and Identity, and reads Constant-node weights', async () => {
    const graph = graphOf(
      [
        makeNode('Constant', [], ['w16'], { value: makeTensor('', [K, N], w, DataType.FLOAT16) }),
        makeNode('Identity', ['w16'], ['w16_id']),
        makeNode('Cast', ['w16_id'], ['w32'], { to: DataType.FLOAT }),
        makeNode('MatMul', ['x', 'w32'], ['y']),
      ],
      [],
    );
    const weight = resolved(graph);
    expect(weight).toMatchObject({ dataName: 'w16', dataSource: 'constant', dataType: DataType.FLOAT16 });
    expect(weight.path.map((n) => n.opType)).toEqual(['Identity', 'Cast']);
    expectAllClose(weight.values(), w, 1e-3); // float16 rounding
    expect(weight.values()).toEqual(await runtimeWeight(graph));
  });

  it('returns undefined for tensors computed at run time', () => {
    const graph = graphOf([makeNode('Relu', ['x'], ['r']), makeNode('MatMul', ['x', 'r'], ['y'])], [], [K, K]);
    expect(resolved.bind(null, graph)).toThrow('weight not resolved');
    expect(resolveWeight(new GraphIndex(graph), 'x')).toBeUndefined();
  });
});

describe('QDQ weights (DequantizeLinear -> MatMul)', () => {
  const rng = new Rng('qdq');

  it('dequantizes per-axis int8 with zero points, matching onnxruntime', async () => {
    const q = randomInts(rng, K * N, -128, 127);
    const scale = randomFloats(rng, N, 0.01).map(Math.abs);
    const zero = randomInts(rng, N, -5, 5);
    const graph = graphOf(
      [makeNode('DequantizeLinear', ['w_q', 'w_scale', 'w_zp'], ['w_dq'], { axis: 1 }, { name: 'dq' }), makeNode('MatMul', ['x', 'w_dq'], ['y'])],
      [makeTensor('w_q', [K, N], new Int8Array(q)), makeTensor('w_scale', [N], scale), makeTensor('w_zp', [N], new Int8Array(zero))],
    );
    const weight = resolved(graph);
    expect(weight.quantization).toEqual({ scheme: 'dequantize-linear', scale: 'w_scale', zeroPoint: 'w_zp', axis: 1 });
    expect(weight).toMatchObject({ dataName: 'w_q', dataType: DataType.INT8, transposed: false, shape: [K, N] });
    const expected = q.map((v, i) => (v - (zero[i % N] as number)) * (scale[i % N] as number));
    expectAllClose(weight.values(), expected);
    expectAllClose(weight.values(), await runtimeWeight(graph));
    expect(describeWeight(weight)).toBe("'w_q' INT8 [6, 4], dequantize-linear scale 'w_scale' per axis 1");
  });

  it('dequantizes per-tensor uint8 and a weight stored [out, in] with axis 0 behind a Transpose', async () => {
    const qT = randomInts(rng, N * K, 0, 255);
    const scale = randomFloats(rng, N, 0.02).map(Math.abs);
    const zero = randomInts(rng, N, 100, 150);
    const graph = graphOf(
      [
        makeNode('DequantizeLinear', ['w_q', 'w_scale', 'w_zp'], ['w_dq'], { axis: 0 }),
        makeNode('Transpose', ['w_dq'], ['w_view'], { perm: [1, 0] }),
        makeNode('MatMul', ['x', 'w_view'], ['y']),
      ],
      [makeTensor('w_q', [N, K], new Uint8Array(qT)), makeTensor('w_scale', [N], scale), makeTensor('w_zp', [N], new Uint8Array(zero))],
    );
    const weight = resolved(graph);
    expect(weight).toMatchObject({ storedShape: [N, K], shape: [K, N], transposed: true });
    expect(weight.quantization?.axis).toBe(0);
    expect(weight.path.map((n) => n.opType)).toEqual(['DequantizeLinear', 'Transpose']);
    expectAllClose(weight.values(), await runtimeWeight(graph));

    const perTensor = graphOf(
      [makeNode('DequantizeLinear', ['w_q', 's', 'z'], ['w_dq']), makeNode('MatMul', ['x', 'w_dq'], ['y'])],
      [makeTensor('w_q', [K, N], new Uint8Array(qT)), makeTensor('s', [], new Float32Array([0.05])), makeTensor('z', [], new Uint8Array([128]))],
    );
    const single = resolved(perTensor);
    expect(single.quantization).toEqual({ scheme: 'dequantize-linear', scale: 's', zeroPoint: 'z' });
    expectAllClose(single.values(), await runtimeWeight(perTensor));
  });

  it('rejects scales that do not fit the axis, block-wise quantization and odd permutations', () => {
    const q = makeTensor('w_q', [K, N], new Int8Array(K * N));
    const wrongCount = graphOf(
      [makeNode('DequantizeLinear', ['w_q', 's'], ['w'], { axis: 0 }), makeNode('MatMul', ['x', 'w'], ['y'])],
      [q, makeTensor('s', [N], new Float32Array(N).fill(1))],
    );
    expect(() => resolved(wrongCount)).toThrow("weight 'w_q': 4 scales in 's' do not match axis 0 of shape [6, 4]");
    const blocked = graphOf(
      [makeNode('DequantizeLinear', ['w_q', 's'], ['w'], { axis: 0, block_size: 2 }), makeNode('MatMul', ['x', 'w'], ['y'])],
      [q, makeTensor('s', [3, N], new Float32Array(3 * N))],
    );
    expect(() => resolved(blocked)).toThrow(/block-wise dequantization of 'w_q' is not supported/);
    const rank3 = graphOf(
      [makeNode('Transpose', ['w3'], ['w'], { perm: [1, 0, 2] }, { name: 'odd' }), makeNode('MatMul', ['x', 'w'], ['y'])],
      [makeTensor('w3', [2, K, N], new Float32Array(2 * K * N))],
    );
    expect(() => resolved(rank3)).toThrow(OnnxError);
    expect(() => resolved(rank3)).toThrow(/Transpose node 'odd': weight 'w3' is transposed with a permutation other than swapping the last two axes/);
  });
});

/** The graph `quantize_dynamic` (onnxruntime, as used by optimum and transformers.js) writes for one MatMul. */
function dynamicQuantized(q: number[], scale: Float32Array, zero: number[] | undefined): GraphProto {
  const mmInputs = ['x_quantized', 'w_quantized', 'x_zero_point'];
  if (zero) mmInputs.push('w_zero_point');
  const initializers = [makeTensor('w_quantized', [K, N], new Int8Array(q)), makeTensor('w_scale', [scale.length], scale)];
  if (zero) initializers.push(makeTensor('w_zero_point', [zero.length], new Int8Array(zero)));
  return graphOf(
    [
      makeNode('DynamicQuantizeLinear', ['x'], ['x_quantized', 'x_scale', 'x_zero_point'], {}, { name: 'x_QuantizeLinear' }),
      makeNode('MatMulInteger', mmInputs, ['y_output_quantized'], {}, { name: 'mm_quant' }),
      makeNode('Cast', ['y_output_quantized'], ['y_output_quantized_cast_output'], { to: DataType.FLOAT }, { name: 'cast' }),
      makeNode('Mul', ['x_scale', 'w_scale'], ['mm_quant_scales_mul:0'], {}, { name: 'mm_quant_scales_mul' }),
      makeNode('Mul', ['y_output_quantized_cast_output', 'mm_quant_scales_mul:0'], ['y'], {}, { name: 'mm_quant_output_scale_mul' }),
    ],
    initializers,
  );
}

describe('dynamic quantization (MatMulInteger, as quantize_dynamic writes it)', () => {
  const rng = new Rng('dynamic');

  it('finds the per-column scale and zero point downstream, matching onnxruntime', async () => {
    const q = randomInts(rng, K * N, -127, 127);
    const scale = randomFloats(rng, N, 0.01).map(Math.abs);
    const zero = randomInts(rng, N, -3, 3);
    const graph = dynamicQuantized(q, scale, zero);
    const weight = resolved(graph, 'MatMulInteger');
    expect(weight.quantization).toEqual({ scheme: 'matmul-integer', scale: 'w_scale', zeroPoint: 'w_zero_point', axis: 1 });
    expect(weight).toMatchObject({ dataName: 'w_quantized', dataType: DataType.INT8, storedShape: [K, N], transposed: false });
    const expected = q.map((v, i) => (v - (zero[i % N] as number)) * (scale[i % N] as number));
    expectAllClose(weight.values(), expected);
    // the runtime quantizes the identity input exactly (scale 1/255, zero point 0)
    expectAllClose(weight.values(), await runtimeWeight(graph), 1e-6);
  });

  it('handles a per-tensor scale without zero point', async () => {
    const q = randomInts(rng, K * N, -127, 127);
    const graph = dynamicQuantized(q, new Float32Array([0.03]), undefined);
    const weight = resolved(graph, 'MatMulInteger');
    expect(weight.quantization).toEqual({ scheme: 'matmul-integer', scale: 'w_scale' });
    expectAllClose(weight.values(), q.map((v) => v * 0.03));
    expectAllClose(weight.values(), await runtimeWeight(graph), 1e-6);
  });

  it('reads the fused contrib ops DynamicQuantizeMatMul and MatMulIntegerToFloat', async () => {
    const q = randomInts(rng, K * N, -127, 127);
    const scale = randomFloats(rng, N, 0.01).map(Math.abs);
    const zero = randomInts(rng, N, -3, 3);
    const initializers = [makeTensor('w_q', [K, N], new Int8Array(q)), makeTensor('w_s', [N], scale), makeTensor('w_z', [N], new Int8Array(zero))];
    const fused = graphOf([makeNode('DynamicQuantizeMatMul', ['x', 'w_q', 'w_s', 'w_z'], ['y'], {}, { domain: 'com.microsoft' })], initializers);
    const weight = resolved(fused, 'DynamicQuantizeMatMul');
    expect(weight.quantization).toEqual({ scheme: 'dynamic-quantize-matmul', scale: 'w_s', zeroPoint: 'w_z', axis: 1 });
    expectAllClose(weight.values(), await runtimeWeight(fused, true), 1e-6);

    const toFloat = graphOf(
      [makeNode('MatMulIntegerToFloat', ['x_q', 'w_q', 'x_s', 'w_s', 'x_z', 'w_z'], ['y'], {}, { domain: 'com.microsoft' })],
      initializers,
    );
    const viaToFloat = resolved(toFloat, 'MatMulIntegerToFloat');
    expect(viaToFloat.quantization?.scheme).toBe('matmul-integer-to-float');
    expect(viaToFloat.values()).toEqual(weight.values());
  });

  it('says what is missing when the pattern is incomplete', () => {
    const graph = dynamicQuantized(randomInts(rng, K * N, -1, 1), new Float32Array([1]), undefined);
    graph.node = graph.node.filter((n) => n.opType !== 'Cast');
    expect(() => resolved(graph, 'MatMulInteger')).toThrow(
      "MatMulInteger node 'mm_quant': cannot find the scale of its weight (expected MatMulInteger -> Cast -> Mul by the scales)",
    );
    const conv = graphOf([makeNode('Conv', ['x', 'w'], ['y'], {}, { name: 'c' })], []);
    expect(() => resolveMatMulWeight(new GraphIndex(conv), conv.node[0] as NodeProto)).toThrow("Conv node 'c': cannot resolve weights of Conv nodes");
  });
});

describe('block-wise 4/8-bit weights (MatMulNBits, transformers.js q4)', () => {
  const rng = new Rng('nbits');
  const KB = 40; // not a multiple of the block size: the last block is padded
  const NB = 5;
  const blockSize = 16;
  const kBlocks = Math.ceil(KB / blockSize);

  /** x [KB, KB] -> MatMulNBits -> y [KB, NB] */
  function nbitsGraph(bits: number, zeroPoints: 'packed' | 'none'): { graph: GraphProto; codes: number[][]; scales: Float32Array; zeros: number[] } {
    const blob = (blockSize * bits) / 8;
    const codes = Array.from({ length: NB }, () => randomInts(rng, kBlocks * blockSize, 0, (1 << bits) - 1));
    const packed = new Uint8Array(NB * kBlocks * blob);
    codes.forEach((row, n) => row.forEach((code, i) => (packed[n * kBlocks * blob + ((i * bits) >> 3)] |= code << ((i * bits) & 7))));
    const scales = randomFloats(rng, NB * kBlocks, 0.05).map(Math.abs);
    const zeros = zeroPoints === 'none' ? [] : randomInts(rng, NB * kBlocks, 0, (1 << bits) - 1);
    const zeroRow = Math.ceil((kBlocks * bits) / 8);
    const packedZeros = new Uint8Array(NB * zeroRow);
    zeros.forEach((z, j) => {
      const n = Math.floor(j / kBlocks);
      const b = j % kBlocks;
      packedZeros[n * zeroRow + ((b * bits) >> 3)] |= z << ((b * bits) & 7);
    });
    const inputs = ['x', 'w_q4', 'w_scales'];
    const initializers = [makeTensor('w_q4', [NB, kBlocks, blob], packed), makeTensor('w_scales', [NB * kBlocks], scales)];
    if (zeroPoints === 'packed') {
      inputs.push('w_zp');
      initializers.push(makeTensor('w_zp', [NB * zeroRow], packedZeros));
    }
    const node = makeNode('MatMulNBits', inputs, ['y'], { K: KB, N: NB, bits, block_size: blockSize }, { domain: 'com.microsoft', name: 'q4' });
    const graph = makeGraph({
      name: 'nbits',
      nodes: [node],
      inputs: [makeValueInfo('x', DataType.FLOAT, [KB, KB])],
      outputs: [makeValueInfo('y', DataType.FLOAT, [KB, NB])],
      initializers,
    });
    return { graph, codes, scales, zeros };
  }

  async function runtimeNBits(graph: GraphProto): Promise<Float32Array> {
    const opsetImports = [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ];
    const session = await ort.InferenceSession.create(encodeModel(makeModel(graph, { opsetImports })), { graphOptimizationLevel: 'disabled' });
    try {
      const result = await session.run({ x: new ort.Tensor('float32', identity(KB), [KB, KB]) });
      return (result['y'] as ort.Tensor).data as Float32Array;
    } finally {
      await session.release();
    }
  }

  it('unpacks 4-bit codes with packed zero points, matching onnxruntime', async () => {
    const { graph, codes, scales, zeros } = nbitsGraph(4, 'packed');
    const weight = resolved(graph, 'MatMulNBits');
    expect(weight).toMatchObject({ dataName: 'w_q4', storedShape: [NB, KB], shape: [KB, NB], transposed: true });
    expect(weight.quantization).toEqual({ scheme: 'matmul-nbits', scale: 'w_scales', zeroPoint: 'w_zp', bits: 4, blockSize });
    const expected = new Float32Array(NB * KB);
    for (let n = 0; n < NB; n++) {
      for (let k = 0; k < KB; k++) {
        const block = n * kBlocks + Math.floor(k / blockSize);
        expected[n * KB + k] = ((codes[n]?.[k] as number) - (zeros[block] as number)) * (scales[block] as number);
      }
    }
    expect(weight.storedValues()).toEqual(expected);
    expectAllClose(weight.values(), await runtimeNBits(graph));
    expect(describeWeight(weight)).toBe("'w_q4' UINT8 [5, 40] transposed, matmul-nbits scale 'w_scales', 4-bit blocks of 16");
  });

  it('uses the default zero point 2^(bits-1) when none is given', async () => {
    const { graph, codes, scales } = nbitsGraph(4, 'none');
    const weight = resolved(graph, 'MatMulNBits');
    expect(weight.storedValues()[0]).toBeCloseTo(((codes[0]?.[0] as number) - 8) * (scales[0] as number), 6);
    expectAllClose(weight.values(), await runtimeNBits(graph));
  });

  it('unpacks 8-bit codes, matching onnxruntime', async () => {
    const { graph } = nbitsGraph(8, 'packed');
    expectAllClose(resolved(graph, 'MatMulNBits').values(), await runtimeNBits(graph));
  });

  it('rejects a packed weight whose shape disagrees with K, N and block_size', () => {
    const { graph } = nbitsGraph(4, 'none');
    const node = graph.node[0] as NodeProto;
    node.attribute = node.attribute.map((a) => (a.name === 'K' ? { ...a, i: 64 } : a));
    expect(() => resolved(graph, 'MatMulNBits')).toThrow("MatMulNBits node 'q4': weight 'w_q4' is UINT8 [5, 3, 8], expected UINT8 [5, 4, 8]");
  });
});

describeShared(
  'weights of real exports',
  () => {
    for (const name of ['kjv-llama-tiny', 'kjv-gpt2-tiny']) {
      it(`${name}: every MatMul fed by an initializer resolves to its values, as stored [in, out]`, () => {
        const loaded = loadModel(path.join(sharedPaths.modelsDir, name, 'onnx/model.onnx'));
        const graph = loaded.model.graph as GraphProto;
        const index = new GraphIndex(graph);
        let count = 0;
        for (const node of index.nodesOfType('MatMul')) {
          const weight = resolveMatMulWeight(index, node, 1, { baseDir: loaded.baseDir });
          if (!weight) continue; // attention products of activations
          const tensor = index.initializer(weight.dataName) as TensorProto;
          expect(weight).toMatchObject({ transposed: false, storedShape: tensor.dims, shape: tensor.dims, path: [] });
          // byte comparison: Jest's toEqual is slow on 300k-element arrays
          expect(bytesOf(weight.values()).equals(bytesOf(decodeTensor(tensor)))).toBe(true);
          count++;
        }
        expect(count).toBe(name === 'kjv-llama-tiny' ? 3 * 7 + 1 : 3 * 4 + 1);
      });
    }
  },
  [sharedPaths.modelsDir],
);

