import * as fs from 'fs';
import * as path from 'path';
import { isDeepStrictEqual } from 'util';
import {
  AttributeType,
  DataLocation,
  DataType,
  OnnxFormatError,
  decodeModel,
  decodeTensorProto,
  encodeModel,
  encodeTensorProto,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  newAttributeProto,
  newTensorProto,
  type ModelProto,
  type TypeProto,
} from '../src';
import { buildMlp, describeShared, sharedPaths } from './helpers';

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;
const UINT64_MAX = 18446744073709551615n;

/** A model that sets (nearly) every field of every message, with values exact in float32. */
function kitchenSinkModel(): ModelProto {
  const tensorType = (elemType: number, dims: (number | string)[]): TypeProto => ({
    tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d, denotation: 'DATA_BATCH' })) } },
  });
  const weight = makeTensor('w', [2, 2], new Float32Array([1, -2, 3.5, 0.25]));
  weight.docString = 'a weight';
  weight.metadataProps = [{ key: 'origin', value: 'test' }];
  const typed = newTensorProto({
    name: 'typed',
    dataType: DataType.INT64,
    dims: [4],
    int64Data: [INT64_MAX, INT64_MIN, -1, 7],
  });
  const typedUnsigned = newTensorProto({ name: 'u64', dataType: DataType.UINT64, dims: [2], uint64Data: [UINT64_MAX, 3] });
  const typedFloats = newTensorProto({ name: 'f', dataType: DataType.FLOAT, dims: [2], floatData: [0.5, -1.5] });
  const typedDoubles = newTensorProto({ name: 'd', dataType: DataType.DOUBLE, dims: [2], doubleData: [Math.PI, -1e300] });
  const typedInt32 = newTensorProto({ name: 'i32', dataType: DataType.INT8, dims: [3], int32Data: [-128, 0, 127] });
  const strings = newTensorProto({
    name: 'strings',
    dataType: DataType.STRING,
    dims: [2],
    stringData: [new TextEncoder().encode('alpha'), new TextEncoder().encode('β')],
  });
  const external = newTensorProto({
    name: 'external',
    dataType: DataType.FLOAT,
    dims: [1024],
    dataLocation: DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: 'weights.bin' },
      { key: 'offset', value: '4096' },
      { key: 'length', value: '4096' },
    ],
  });
  const segmented = newTensorProto({ name: 'seg', dataType: DataType.FLOAT, dims: [4], segment: { begin: 0, end: 2 }, floatData: [1, 2] });
  const explicitDefault = newTensorProto({ name: 'zeros', dataType: DataType.FLOAT, dims: [0], dataLocation: DataLocation.DEFAULT, rawData: new Uint8Array(0) });

  const thenBranch = makeGraph({
    name: 'then',
    nodes: [makeNode('Identity', ['w'], ['then_out'])],
    inputs: [],
    outputs: [makeValueInfo('then_out', DataType.FLOAT, [2, 2])],
  });
  const elseBranch = makeGraph({
    name: 'else',
    nodes: [makeNode('Neg', ['w'], ['else_out'])],
    inputs: [],
    outputs: [makeValueInfo('else_out', DataType.FLOAT, [2, null])],
  });
  const typeAttribute = newAttributeProto({ name: 'tp', type: AttributeType.TYPE_PROTO, tp: tensorType(DataType.FLOAT, [3]) });
  const typesAttribute = newAttributeProto({
    name: 'tps',
    type: AttributeType.TYPE_PROTOS,
    typeProtos: [tensorType(DataType.INT64, []), { sequenceType: { elemType: tensorType(DataType.FLOAT, ['n']) } }],
  });
  const sparse = { values: makeTensor('sparse_values', [2], new Float32Array([5, 6])), indices: makeTensor('sparse_indices', [2], new BigInt64Array([1n, 3n])), dims: [4] };
  const node = makeNode(
    'Custom',
    ['x', '', 'w'],
    ['y'],
    {
      alpha: makeAttribute('alpha', 1, AttributeType.FLOAT),
      count: -3,
      big: INT64_MAX,
      mode: 'linear',
      raw: new Uint8Array([0, 255]),
      ints: [1, -1, INT64_MIN],
      floats: [0.5, 2.25],
      names: ['a', 'b'],
      tensor: weight,
      tensors: [typedFloats, typedInt32],
      body: thenBranch,
      bodies: [thenBranch, elseBranch],
      tp: typeAttribute,
      tps: typesAttribute,
      sparse: newAttributeProto({ type: AttributeType.SPARSE_TENSOR, sparseTensor: sparse }),
      sparses: newAttributeProto({ type: AttributeType.SPARSE_TENSORS, sparseTensors: [sparse] }),
      ref: newAttributeProto({ type: AttributeType.FLOAT, refAttrName: 'outer_alpha', docString: 'ref' }),
    },
    { name: 'custom', domain: 'com.example' },
  );
  node.overload = 'v2';
  node.docString = 'node doc';
  node.metadataProps = [{ key: 'k', value: 'v' }];
  node.deviceConfigurations = [
    {
      configurationId: 'cfg',
      pipelineStage: 1,
      shardingSpec: [
        {
          tensorName: 'w',
          device: [0, 1],
          indexToDeviceGroupMap: [{ key: 0, value: [0, 1] }],
          shardedDim: [{ axis: 0, simpleSharding: [{ dimValue: 2, numShards: 2 }, { dimParam: 'n', numShards: 2 }] }],
        },
      ],
    },
  ];
  const ifNode = makeNode('If', ['cond'], ['branch_out'], { then_branch: thenBranch, else_branch: elseBranch });

  const graph = makeGraph({
    name: 'sink',
    docString: 'graph doc',
    nodes: [node, ifNode],
    inputs: [
      makeValueInfo('x', DataType.FLOAT, ['batch', 2]),
      makeValueInfo('cond', DataType.BOOL, []),
      { name: 'seq', type: { sequenceType: { elemType: tensorType(DataType.FLOAT, [2]) } }, metadataProps: [] },
      { name: 'map', type: { mapType: { keyType: DataType.INT64, valueType: tensorType(DataType.FLOAT, []) } }, metadataProps: [] },
      { name: 'opt', type: { optionalType: { elemType: tensorType(DataType.FLOAT, [1]) } }, metadataProps: [] },
      { name: 'sp', type: { sparseTensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 4 }] } } }, metadataProps: [] },
      { name: 'opaque', type: { opaqueType: { domain: 'com.example', name: 'Blob' }, denotation: 'IMAGE' }, docString: 'd', metadataProps: [{ key: 'a', value: 'b' }] },
    ],
    outputs: [makeValueInfo('y', DataType.FLOAT, ['batch', 2]), makeValueInfo('branch_out', DataType.FLOAT)],
    initializers: [weight, typed, typedUnsigned, typedFloats, typedDoubles, typedInt32, strings, external, segmented, explicitDefault],
    valueInfo: [makeValueInfo('hidden', DataType.FLOAT16, [null, 'n'])],
  });
  graph.sparseInitializer = [sparse];
  graph.quantizationAnnotation = [
    { tensorName: 'w', quantParameterTensorNames: [{ key: 'SCALE_TENSOR', value: 'w_scale' }, { key: 'ZERO_POINT_TENSOR', value: 'w_zp' }] },
  ];
  graph.metadataProps = [{ key: 'graph', value: 'meta' }];

  const model = makeModel(graph, {
    opsetImports: [
      { domain: '', version: 17 },
      { domain: 'com.example', version: 1 },
    ],
    irVersion: 10,
    producerName: 'zerolm-test',
    producerVersion: '1.0',
    docString: 'model doc',
    metadata: { author: 'tests' },
  });
  model.domain = 'org.zerolm';
  model.modelVersion = 3;
  model.functions = [
    {
      name: 'Custom',
      domain: 'com.example',
      overload: 'v2',
      input: ['x', 'w'],
      output: ['y'],
      attribute: ['alpha'],
      attributeProto: [makeAttribute('count', 2)],
      node: [makeNode('MatMul', ['x', 'w'], ['y'])],
      docString: 'function doc',
      opsetImport: [{ domain: '', version: 17 }],
      valueInfo: [makeValueInfo('y', DataType.FLOAT)],
      metadataProps: [{ key: 'f', value: 'g' }],
    },
  ];
  model.trainingInfo = [
    {
      initialization: makeGraph({ name: 'init', nodes: [], inputs: [], outputs: [] }),
      algorithm: makeGraph({ name: 'step', nodes: [], inputs: [], outputs: [] }),
      initializationBinding: [{ key: 'w', value: 'w_init' }],
      updateBinding: [{ key: 'w', value: 'w_next' }],
    },
  ];
  model.configuration = [{ name: 'cfg', numDevices: 2, device: ['gpu0', 'gpu1'] }];
  return model;
}

describe('protobuf encoding', () => {
  it('round-trips every message type and field exactly', () => {
    const model = kitchenSinkModel();
    const decoded = decodeModel(encodeModel(model));
    expect(decoded).toEqual(model);
    // and a second trip gives the same bytes
    expect(Buffer.from(encodeModel(decoded)).equals(Buffer.from(encodeModel(model)))).toBe(true);
  });

  it('keeps int64 values beyond 2^53 as bigint and safe ones as number', () => {
    const decoded = decodeModel(encodeModel(kitchenSinkModel()));
    const typed = decoded.graph?.initializer.find((t) => t.name === 'typed');
    expect(typed?.int64Data).toEqual([INT64_MAX, INT64_MIN, -1, 7]);
    expect(typeof typed?.int64Data[2]).toBe('number');
    const node = decoded.graph?.node[0];
    expect(node?.attribute.find((a) => a.name === 'big')?.i).toBe(INT64_MAX);
    expect(node?.attribute.find((a) => a.name === 'count')?.i).toBe(-3);
    expect(decoded.graph?.initializer.find((t) => t.name === 'u64')?.uint64Data).toEqual([UINT64_MAX, 3]);
  });

  it('keeps field presence: explicit defaults stay, absent fields stay absent', () => {
    const decoded = decodeModel(encodeModel(kitchenSinkModel()));
    const zeros = decoded.graph?.initializer.find((t) => t.name === 'zeros');
    expect(zeros?.dataLocation).toBe(DataLocation.DEFAULT);
    expect(zeros?.rawData).toEqual(new Uint8Array(0));
    const w = decoded.graph?.initializer.find((t) => t.name === 'w');
    expect(w && 'dataLocation' in w).toBe(false);
    expect(w && 'segment' in w).toBe(false);
  });

  it('uses the field numbers of onnx.proto (checked against hand-encoded bytes)', () => {
    const tensor = newTensorProto({
      dims: [2, 3],
      dataType: DataType.FLOAT,
      int64Data: [1, 300],
      name: 'w',
      rawData: new Uint8Array([1, 2]),
      externalData: [{ key: 'k', value: 'v' }],
      dataLocation: DataLocation.EXTERNAL,
    });
    // dims (1, unpacked varints), data_type (2), int64_data (7, packed), name (8), raw_data (9),
    // external_data (13, StringStringEntryProto key=1 value=2), data_location (14)
    const expected = [
      0x08, 2, 0x08, 3, 0x10, 1, 0x3a, 3, 1, 0xac, 0x02, 0x42, 1, 0x77, 0x4a, 2, 1, 2, 0x6a, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x76,
      0x70, 1,
    ];
    expect([...encodeTensorProto(tensor)]).toEqual(expected);

    const model = makeModel(makeGraph({ name: 'g', nodes: [makeNode('Relu', ['a'], ['b'], {}, { name: 'n' })], inputs: [], outputs: [] }), {
      irVersion: 8,
      opsetImports: [{ domain: '', version: 17 }],
      producerName: 'p',
    });
    // ir_version (1), producer_name (2), graph (7: node (1: input 1, output 2, name 3, op_type 4), name 2), opset_import (8: domain 1, version 2)
    const graphBytes = [0x0a, 15, 0x0a, 1, 0x61, 0x12, 1, 0x62, 0x1a, 1, 0x6e, 0x22, 4, 0x52, 0x65, 0x6c, 0x75, 0x12, 1, 0x67];
    const expectedModel = [0x08, 8, 0x12, 1, 0x70, 0x3a, graphBytes.length, ...graphBytes, 0x42, 4, 0x0a, 0, 0x10, 17];
    expect([...encodeModel(model)]).toEqual(expectedModel);
  });

  it('decodes bytes fields as zero-copy views of the input', () => {
    const bytes = encodeModel(buildMlp().model);
    const model = decodeModel(bytes);
    const w1 = model.graph?.initializer.find((t) => t.name === 'w1');
    expect(w1?.rawData?.buffer).toBe(bytes.buffer);
    // a Node Buffer input works too and still yields views of its memory
    const buffer = Buffer.from(bytes);
    const fromBuffer = decodeModel(buffer).graph?.initializer[0]?.rawData;
    expect(fromBuffer?.buffer).toBe(buffer.buffer);
    expect(Object.getPrototypeOf(fromBuffer)).toBe(Uint8Array.prototype);
  });

  it('returns a fresh, unshared buffer from encodeModel', () => {
    const a = encodeModel(buildMlp('a').model);
    const b = encodeModel(buildMlp('b').model);
    expect(a.byteOffset).toBe(0);
    expect(a.buffer.byteLength).toBe(a.byteLength);
    expect(a.buffer).not.toBe(b.buffer);
  });

  it('decodes and re-encodes a single TensorProto', () => {
    const tensor = makeTensor('t', [3], new Int32Array([1, -2, 3]));
    expect(decodeTensorProto(encodeTensorProto(tensor))).toEqual(tensor);
  });
});

describe('decoding errors', () => {
  const good = encodeModel(buildMlp().model);

  it('names truncation with the byte offset', () => {
    const truncated = good.subarray(0, good.length - 7);
    expect(() => decodeModel(truncated)).toThrow(OnnxFormatError);
    expect(() => decodeModel(truncated)).toThrow(/^not a valid ONNX model: truncated at byte \d+/);
  });

  it('names an invalid wire type', () => {
    expect(() => decodeModel(new Uint8Array([0x08, 0x08, 0x7f]))).toThrow(/not a valid ONNX model: invalid wire type 7 at byte \d+/);
  });

  it('rejects bytes that decode to no graph, and non-bytes input', () => {
    expect(() => decodeModel(new Uint8Array(0))).toThrow(/not a valid ONNX model: it has no graph/);
    expect(() => decodeModel('model.onnx' as unknown as Uint8Array)).toThrow(OnnxFormatError);
  });

  it('names the source in the message', () => {
    expect(() => decodeModel(good.subarray(0, 20), { source: '/tmp/m.onnx' })).toThrow(/^not a valid ONNX model \(\/tmp\/m\.onnx\): /);
  });

  it('rejects int64 values outside the safe range where numbers are expected', () => {
    const model = buildMlp().model;
    const w1 = model.graph?.initializer[0];
    if (!w1) throw new Error('no initializer');
    (w1.dims as unknown as bigint[])[0] = 1n << 60n;
    expect(() => decodeModel(encodeModel(model))).toThrow(/initializer 'w1'\.dims = 1152921504606846976 is outside the safe integer range/);
  });

  it('stops messages nested too deeply instead of overflowing the stack', () => {
    // graph { node { attribute { g: graph { node { ... } } } } } hand-encoded 200 levels deep
    const wrap = (field: number, inner: number[]): number[] => {
      const length: number[] = [];
      let n = inner.length;
      do {
        length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
        n >>>= 7;
      } while (n > 0);
      return [(field << 3) | 2, ...length, ...inner];
    };
    let graph: number[] = [];
    for (let level = 0; level < 200; level++) graph = wrap(1, wrap(5, wrap(6, graph)));
    const bytes = new Uint8Array([0x08, 8, ...wrap(7, graph)]);
    expect(() => decodeModel(bytes)).toThrow(/not a valid ONNX model: messages nested too deeply/);
  });
});

describeShared(
  'real torch.onnx exports',
  () => {
    for (const name of ['kjv-llama-tiny', 'kjv-gpt2-tiny']) {
      it(`${name}: decode -> encode reproduces the file byte for byte, and decode -> encode -> decode is equal`, () => {
        const bytes = new Uint8Array(fs.readFileSync(path.join(sharedPaths.modelsDir, name, 'onnx/model.onnx')));
        const model = decodeModel(bytes);
        expect(model.opsetImport).toEqual([{ version: 14 }]);
        expect(model.producerName).toBe('pytorch');
        expect(model.graph?.node.some((n) => n.opType === 'Constant' && n.attribute[0]?.t?.rawData)).toBe(true);
        const again = encodeModel(model);
        expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
        // util's deep equality: Jest's toEqual walks 3 MB of byte views element by element
        expect(isDeepStrictEqual(decodeModel(again), model)).toBe(true);
      });
    }
  },
  [sharedPaths.modelsDir],
);
