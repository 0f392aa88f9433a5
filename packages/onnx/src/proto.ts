/**
 * ONNX messages as plain TypeScript objects, and their protobuf encoding (protobufjs with the
 * schema in `schema.ts`).
 *
 * Conventions of the decoded objects:
 * - field names are the onnx.proto names in camelCase (`opType`, `rawData`, `dataType`); repeated
 *   fields keep their singular proto names (`graph.node`, `graph.initializer`, `node.attribute`);
 * - repeated fields are always arrays (empty when absent); optional scalars and sub-messages are
 *   absent (`undefined`) when the field is not on the wire, present (even when zero) when it is;
 * - `bytes` fields (`rawData`, attribute `s`, `stringData`) are zero-copy `Uint8Array` views into
 *   the input buffer;
 * - int64 fields typed `number` (dims, versions, `dimValue`, segment bounds) are checked to be
 *   safe integers on decode; int64 fields typed `Int64` (attribute `i`/`ints`, `int64Data`,
 *   `uint64Data`) are `number` when within +-2^53 and `bigint` otherwise (torch writes INT64_MAX as
 *   a "to the end" sentinel), so values survive decode -> encode unchanged.
 */
import { Reader, Root, Type, Writer } from 'protobufjs/light';
import { OnnxError, OnnxFormatError } from './errors';
import { ONNX_SCHEMA } from './schema';

/** A signed or unsigned 64-bit integer: `number` within +-(2^53 - 1), `bigint` beyond. */
export type Int64 = number | bigint;

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
} as const;
export type DataTypeName = keyof typeof DataType;

/** The name of a TensorProto.DataType value, or `DATA_TYPE_<n>` for values this schema lacks. */
export function dataTypeName(dataType: number): string {
  for (const [name, value] of Object.entries(DataType)) if (value === dataType) return name;
  return `DATA_TYPE_${dataType}`;
}

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

/** TensorProto.DataLocation. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

export interface StringStringEntryProto {
  key?: string;
  value?: string;
}

export interface OperatorSetIdProto {
  /** Empty or absent: the default ONNX domain (`ai.onnx`). */
  domain?: string;
  version?: number;
}

export interface TensorSegment {
  begin?: number;
  end?: number;
}

export interface TensorProto {
  dims: number[];
  /** A `DataType` value. */
  dataType?: number;
  segment?: TensorSegment;
  floatData: number[];
  /** int32, and per the spec also int16/int8/uint16/uint8/bool and the bit patterns of fp16/bf16. */
  int32Data: number[];
  stringData: Uint8Array[];
  int64Data: Int64[];
  name?: string;
  docString?: string;
  /** Little-endian fixed-width elements; a view into the decoded buffer. */
  rawData?: Uint8Array;
  /** Keys `location`, `offset`, `length`, `checksum` when `dataLocation` is EXTERNAL. */
  externalData: StringStringEntryProto[];
  /** A `DataLocation` value. */
  dataLocation?: number;
  doubleData: number[];
  /** uint32 and uint64. */
  uint64Data: Int64[];
  metadataProps: StringStringEntryProto[];
}

export interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims: number[];
}

export interface TensorShapeDimension {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}

export interface TensorShapeProto {
  dim: TensorShapeDimension[];
}

export interface TypeProtoTensor {
  elemType?: number;
  shape?: TensorShapeProto;
}

export interface TypeProto {
  tensorType?: TypeProtoTensor;
  sequenceType?: { elemType?: TypeProto };
  mapType?: { keyType?: number; valueType?: TypeProto };
  optionalType?: { elemType?: TypeProto };
  sparseTensorType?: TypeProtoTensor;
  opaqueType?: { domain?: string; name?: string };
  denotation?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  docString?: string;
  metadataProps: StringStringEntryProto[];
}

export interface AttributeProto {
  name?: string;
  refAttrName?: string;
  docString?: string;
  /** An `AttributeType` value. */
  type?: number;
  f?: number;
  i?: Int64;
  /** UTF-8 bytes. */
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  sparseTensor?: SparseTensorProto;
  tp?: TypeProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  sparseTensors: SparseTensorProto[];
  typeProtos: TypeProto[];
}

export interface IntIntListEntryProto {
  key?: Int64;
  value: Int64[];
}

export interface SimpleShardedDimProto {
  dimValue?: Int64;
  dimParam?: string;
  numShards?: Int64;
}

export interface ShardedDimProto {
  axis?: Int64;
  simpleSharding: SimpleShardedDimProto[];
}

export interface ShardingSpecProto {
  tensorName?: string;
  device: Int64[];
  indexToDeviceGroupMap: IntIntListEntryProto[];
  shardedDim: ShardedDimProto[];
}

export interface NodeDeviceConfigurationProto {
  configurationId?: string;
  shardingSpec: ShardingSpecProto[];
  pipelineStage?: number;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType?: string;
  domain?: string;
  overload?: string;
  attribute: AttributeProto[];
  docString?: string;
  metadataProps: StringStringEntryProto[];
  deviceConfigurations: NodeDeviceConfigurationProto[];
}

export interface TensorAnnotation {
  tensorName?: string;
  quantParameterTensorNames: StringStringEntryProto[];
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  sparseInitializer: SparseTensorProto[];
  docString?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  quantizationAnnotation: TensorAnnotation[];
  metadataProps: StringStringEntryProto[];
}

export interface TrainingInfoProto {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initializationBinding: StringStringEntryProto[];
  updateBinding: StringStringEntryProto[];
}

export interface FunctionProto {
  name?: string;
  input: string[];
  output: string[];
  attribute: string[];
  attributeProto: AttributeProto[];
  node: NodeProto[];
  docString?: string;
  opsetImport: OperatorSetIdProto[];
  domain?: string;
  overload?: string;
  valueInfo: ValueInfoProto[];
  metadataProps: StringStringEntryProto[];
}

export interface DeviceConfigurationProto {
  name?: string;
  numDevices?: number;
  device: string[];
}

export interface ModelProto {
  irVersion?: number;
  opsetImport: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphProto;
  metadataProps: StringStringEntryProto[];
  trainingInfo: TrainingInfoProto[];
  functions: FunctionProto[];
  configuration: DeviceConfigurationProto[];
}

// ---------------------------------------------------------------------------------------------
// Wire format

const root = Root.fromJSON(ONNX_SCHEMA);
const modelType = root.lookupType('onnx.ModelProto');
const tensorType = root.lookupType('onnx.TensorProto');

const TWO_POW_32 = 4294967296;

/** Reads a base-128 varint of up to 64 bits as two unsigned 32-bit halves. */
function readVarint64(reader: Reader): [number, number] {
  let low = 0;
  let high = 0;
  for (let i = 0; i < 10; i++) {
    if (reader.pos >= reader.len) {
      throw new RangeError(`index out of range: ${reader.pos} + 1 > ${reader.len}`);
    }
    const byte = reader.buf[reader.pos++] as number;
    if (i < 4) low |= (byte & 0x7f) << (7 * i);
    else if (i === 4) {
      low |= (byte & 0x0f) << 28;
      high |= (byte & 0x7f) >>> 4;
    } else high |= (byte & 0x7f) << (7 * i - 32);
    if (byte < 0x80) return [low >>> 0, high >>> 0];
  }
  throw new Error(`invalid varint encoding at offset ${reader.pos}`);
}

function readInt64(this: Reader): Int64 {
  const [low, high] = readVarint64(this);
  const value = (high | 0) * TWO_POW_32 + low;
  return Number.isSafeInteger(value) ? value : (BigInt(high | 0) << 32n) + BigInt(low);
}

function readUint64(this: Reader): Int64 {
  const [low, high] = readVarint64(this);
  const value = high * TWO_POW_32 + low;
  return Number.isSafeInteger(value) ? value : (BigInt(high) << 32n) + BigInt(low);
}

function readBytesView(this: Reader): Uint8Array {
  const length = this.uint32();
  const start = this.pos;
  if (length > this.len - start) {
    throw new RangeError(`index out of range: ${start} + ${length} > ${this.len}`);
  }
  this.pos = start + length;
  return this.buf.subarray(start, start + length);
}

/**
 * protobufjs would return int64 values as `Long` objects (the `long` package is installed with
 * it) and `bytes` as Buffers or copies; this reader returns `number | bigint` and plain views,
 * without touching protobufjs' global configuration.
 */
class OnnxReader extends Reader {}
Object.assign(OnnxReader.prototype, { int64: readInt64, uint64: readUint64, bytes: readBytesView });

function longBitsOf(value: unknown): unknown {
  if (typeof value !== 'bigint') return value;
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0 };
}

function writeInt64(this: Writer, value: unknown): Writer {
  return Writer.prototype.uint64.call(this, longBitsOf(value) as number);
}

/** Accepts `bigint` in int64 fields (protobufjs only knows numbers, strings and Longs). */
class OnnxWriter extends Writer {}
Object.assign(OnnxWriter.prototype, { int64: writeInt64, uint64: writeInt64 });

const TO_PLAIN_OPTIONS = { arrays: true } as const;

function describeDecodeFailure(error: unknown, reader: Reader): string {
  const message = error instanceof Error ? error.message : String(error);
  const wireType = /invalid wire type (\d+)/.exec(message);
  if (wireType) return `invalid wire type ${wireType[1]} at byte ${reader.pos}`;
  if (error instanceof RangeError && /index out of range/.test(message)) {
    return `truncated at byte ${reader.pos} (${message})`;
  }
  if (/maximum nesting depth|call stack/i.test(message)) {
    return `messages nested too deeply near byte ${reader.pos}`;
  }
  return `${message} (near byte ${reader.pos})`;
}

/**
 * A plain Uint8Array over the caller's memory: Node Buffers (pooled, with their own `slice`) and
 * typed arrays from other realms become views, so every decoded `bytes` field is a plain view.
 */
function asPlainBytes(bytes: unknown, what: string): Uint8Array {
  if (!ArrayBuffer.isView(bytes)) {
    throw new OnnxFormatError(`not a valid ${what}: expected bytes (Uint8Array), got ${bytes === null ? 'null' : typeof bytes}`);
  }
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? (bytes as Uint8Array)
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function decodeMessage<T>(type: Type, bytes: Uint8Array, what: string, source?: string): T {
  const reader = new OnnxReader(asPlainBytes(bytes, what));
  const where = source ? ` (${source})` : '';
  try {
    const message = type.decode(reader);
    return type.toObject(message, TO_PLAIN_OPTIONS) as T;
  } catch (error) {
    throw new OnnxFormatError(`not a valid ${what}${where}: ${describeDecodeFailure(error, reader)}`, {
      cause: error,
    });
  }
}

function encodeMessage(type: Type, message: object, what: string): Uint8Array {
  let encoded: Uint8Array;
  try {
    encoded = type.encode(message, new OnnxWriter()).finish();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new OnnxError(`cannot encode ${what}: ${reason}`, { cause: error });
  }
  // protobufjs hands out small results as slices of a shared pool; callers get their own buffer.
  if (encoded.byteOffset === 0 && encoded.buffer.byteLength === encoded.byteLength) return encoded;
  return encoded.slice();
}

export interface DecodeOptions {
  /** Named in error messages (e.g. the file path). */
  source?: string;
}

/**
 * Decodes ONNX model bytes. Throws `OnnxFormatError` (never another kind of error) when the bytes
 * are not a valid model: truncated, wrong wire types, nesting too deep, int64 values out of
 * range in number-typed fields, or no graph.
 */
export function decodeModel(bytes: Uint8Array, options: DecodeOptions = {}): ModelProto {
  const model = decodeMessage<ModelProto>(modelType, bytes, 'ONNX model', options.source);
  const where = options.source ? ` (${options.source})` : '';
  try {
    checkModel(model);
  } catch (error) {
    if (error instanceof IntegerRangeError) {
      throw new OnnxFormatError(`not a valid ONNX model${where}: ${error.message}`);
    }
    throw error;
  }
  if (model.graph === undefined) {
    throw new OnnxFormatError(`not a valid ONNX model${where}: it has no graph`);
  }
  return model;
}

/** Encodes a model to protobuf bytes (a fresh buffer owned by the caller). */
export function encodeModel(model: ModelProto): Uint8Array {
  return encodeMessage(modelType, model, 'ONNX model');
}

/** Decodes one serialized TensorProto (as stored in `.pb` test data files). */
export function decodeTensorProto(bytes: Uint8Array, options: DecodeOptions = {}): TensorProto {
  const tensor = decodeMessage<TensorProto>(tensorType, bytes, 'ONNX tensor', options.source);
  try {
    checkTensor(tensor, 'tensor');
  } catch (error) {
    if (error instanceof IntegerRangeError) throw new OnnxFormatError(`not a valid ONNX tensor: ${error.message}`);
    throw error;
  }
  return tensor;
}

/** Encodes one TensorProto. */
export function encodeTensorProto(tensor: TensorProto): Uint8Array {
  return encodeMessage(tensorType, tensor, 'ONNX tensor');
}

// ---------------------------------------------------------------------------------------------
// Range checks of the int64 fields typed `number`

class IntegerRangeError extends Error {}

function requireSafe(value: unknown, path: string): void {
  if (typeof value === 'bigint') {
    throw new IntegerRangeError(`${path} = ${value} is outside the safe integer range`);
  }
}

function checkTensor(tensor: TensorProto, path: string): void {
  for (const dim of tensor.dims) requireSafe(dim, `${path}.dims`);
  if (tensor.segment) {
    requireSafe(tensor.segment.begin, `${path}.segment.begin`);
    requireSafe(tensor.segment.end, `${path}.segment.end`);
  }
}

function checkSparse(sparse: SparseTensorProto, path: string): void {
  for (const dim of sparse.dims) requireSafe(dim, `${path}.dims`);
  if (sparse.values) checkTensor(sparse.values, `${path}.values`);
  if (sparse.indices) checkTensor(sparse.indices, `${path}.indices`);
}

function checkShape(shape: TensorShapeProto | undefined, path: string): void {
  for (const dim of shape?.dim ?? []) requireSafe(dim.dimValue, `${path}.dim_value`);
}

function checkType(type: TypeProto | undefined, path: string): void {
  if (!type) return;
  checkShape(type.tensorType?.shape, `${path}.tensor_type.shape`);
  checkShape(type.sparseTensorType?.shape, `${path}.sparse_tensor_type.shape`);
  checkType(type.sequenceType?.elemType, `${path}.sequence_type`);
  checkType(type.mapType?.valueType, `${path}.map_type`);
  checkType(type.optionalType?.elemType, `${path}.optional_type`);
}

function checkValueInfos(infos: ValueInfoProto[], path: string): void {
  for (const info of infos) checkType(info.type, `${path} '${info.name ?? ''}'`);
}

function checkAttribute(attribute: AttributeProto, path: string): void {
  const here = `${path}.attribute '${attribute.name ?? ''}'`;
  if (attribute.t) checkTensor(attribute.t, here);
  if (attribute.g) checkGraph(attribute.g, here);
  if (attribute.sparseTensor) checkSparse(attribute.sparseTensor, here);
  checkType(attribute.tp, here);
  for (const tensor of attribute.tensors) checkTensor(tensor, here);
  for (const graph of attribute.graphs) checkGraph(graph, here);
  for (const sparse of attribute.sparseTensors) checkSparse(sparse, here);
  for (const type of attribute.typeProtos) checkType(type, here);
}

function checkNodes(nodes: NodeProto[], path: string): void {
  for (const node of nodes) {
    for (const attribute of node.attribute) checkAttribute(attribute, `${path} node '${node.name ?? ''}'`);
  }
}

function checkGraph(graph: GraphProto, path: string): void {
  const here = `${path} graph '${graph.name ?? ''}'`;
  checkNodes(graph.node, here);
  for (const tensor of graph.initializer) checkTensor(tensor, `${here} initializer '${tensor.name ?? ''}'`);
  for (const sparse of graph.sparseInitializer) checkSparse(sparse, `${here} sparse initializer`);
  checkValueInfos(graph.input, `${here} input`);
  checkValueInfos(graph.output, `${here} output`);
  checkValueInfos(graph.valueInfo, `${here} value_info`);
}

function checkOpsets(opsets: OperatorSetIdProto[], path: string): void {
  for (const opset of opsets) requireSafe(opset.version, `${path}.opset_import.version`);
}

function checkModel(model: ModelProto): void {
  requireSafe(model.irVersion, 'ir_version');
  requireSafe(model.modelVersion, 'model_version');
  checkOpsets(model.opsetImport, 'model');
  if (model.graph) checkGraph(model.graph, 'model');
  for (const fn of model.functions) {
    const here = `function '${fn.name ?? ''}'`;
    checkOpsets(fn.opsetImport, here);
    checkNodes(fn.node, here);
    checkValueInfos(fn.valueInfo, `${here} value_info`);
    for (const attribute of fn.attributeProto) checkAttribute(attribute, here);
  }
  for (const info of model.trainingInfo) {
    if (info.initialization) checkGraph(info.initialization, 'training_info.initialization');
    if (info.algorithm) checkGraph(info.algorithm, 'training_info.algorithm');
  }
}
