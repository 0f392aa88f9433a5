/**
 * Decoding TensorProto contents into typed arrays, and encoding typed arrays into TensorProtos.
 *
 * Element types and what `decodeTensor` returns:
 *
 * | data type            | result                                                      |
 * |----------------------|-------------------------------------------------------------|
 * | FLOAT                | Float32Array (a zero-copy view of `rawData` when aligned)    |
 * | FLOAT16, BFLOAT16    | Float32Array (converted)                                    |
 * | DOUBLE               | Float64Array                                                |
 * | INT8 / UINT8 / BOOL  | Int8Array / Uint8Array / Uint8Array                         |
 * | INT16 / UINT16       | Int16Array / Uint16Array                                    |
 * | INT32 / UINT32       | Int32Array / Uint32Array                                    |
 * | INT64 / UINT64       | BigInt64Array / BigUint64Array, or with `int64: 'number'` a |
 * |                      | Float64Array: exact within +-2^53, nearest double beyond    |
 *
 * Other types (STRING, complex, 8/4-bit floats and ints) raise an `OnnxError`.
 *
 * Views share memory with the model bytes: writing into them changes the model.
 */
import * as os from 'os';
import { OnnxError, OnnxFormatError } from './errors';
import { isExternalTensor, readExternalTensorBytes } from './external';
import {
  bfloat16ToFloat32Array,
  float16ToFloat32Array,
  float32ToBfloat16Array,
  float32ToFloat16Array,
} from './float16';
import { DataType, dataTypeName, type Int64, type TensorProto } from './proto';

export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** How each supported type is stored in raw_data, and which typed field carries it otherwise. */
interface ElementLayout {
  raw: TypedArrayConstructor;
  field: 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data';
}

const LAYOUTS: Record<number, ElementLayout> = {
  [DataType.FLOAT]: { raw: Float32Array, field: 'floatData' },
  [DataType.FLOAT16]: { raw: Uint16Array, field: 'int32Data' },
  [DataType.BFLOAT16]: { raw: Uint16Array, field: 'int32Data' },
  [DataType.DOUBLE]: { raw: Float64Array, field: 'doubleData' },
  [DataType.INT8]: { raw: Int8Array, field: 'int32Data' },
  [DataType.UINT8]: { raw: Uint8Array, field: 'int32Data' },
  [DataType.BOOL]: { raw: Uint8Array, field: 'int32Data' },
  [DataType.INT16]: { raw: Int16Array, field: 'int32Data' },
  [DataType.UINT16]: { raw: Uint16Array, field: 'int32Data' },
  [DataType.INT32]: { raw: Int32Array, field: 'int32Data' },
  [DataType.UINT32]: { raw: Uint32Array, field: 'uint64Data' },
  [DataType.INT64]: { raw: BigInt64Array, field: 'int64Data' },
  [DataType.UINT64]: { raw: BigUint64Array, field: 'uint64Data' },
};

if (os.endianness() !== 'LE') {
  // raw_data is little-endian; views would silently misread on a big-endian host.
  throw new OnnxError('@zerolm/onnx needs a little-endian host');
}

/** Bytes per element of a supported numeric data type, `undefined` for the others. */
export function elementByteSize(dataType: number): number | undefined {
  return LAYOUTS[dataType]?.raw.BYTES_PER_ELEMENT;
}

function label(tensor: TensorProto): string {
  return `tensor '${tensor.name ?? ''}'`;
}

/** The number of elements the dims imply; throws when a dim is negative or the product unsafe. */
export function tensorElementCount(tensor: TensorProto): number {
  let count = 1;
  for (const dim of tensor.dims) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new OnnxFormatError(`${label(tensor)} has an invalid dimension ${String(dim)} in [${tensor.dims.join(', ')}]`);
    }
    count *= dim;
    if (!Number.isSafeInteger(count)) {
      throw new OnnxFormatError(`${label(tensor)} has too many elements: dims [${tensor.dims.join(', ')}]`);
    }
  }
  return count;
}

function layoutOf(tensor: TensorProto): ElementLayout {
  const dataType = tensor.dataType ?? DataType.UNDEFINED;
  const layout = LAYOUTS[dataType];
  if (!layout) {
    throw new OnnxError(`${label(tensor)} has data type ${dataTypeName(dataType)}, which this package cannot decode`);
  }
  return layout;
}

export interface DecodeTensorOptions {
  /** The model's folder, needed for tensors with external data. */
  baseDir?: string;
  /** INT64/UINT64 as `bigint` arrays (default) or as a Float64Array of numbers. */
  int64?: 'bigint' | 'number';
}

/** A typed array over `bytes`, copying only when the offset is not a multiple of the element size. */
function viewBytes<C extends TypedArrayConstructor>(ctor: C, bytes: Uint8Array, count: number): InstanceType<C> {
  const aligned = bytes.byteOffset % ctor.BYTES_PER_ELEMENT === 0 ? bytes : bytes.slice();
  return new ctor(aligned.buffer as ArrayBuffer, aligned.byteOffset, count) as InstanceType<C>;
}

/**
 * The little-endian element bytes of a tensor stored in `rawData` or externally, or `undefined`
 * when its values sit in a typed field. Checks the byte count against the dims.
 */
function storedBytes(tensor: TensorProto, layout: ElementLayout, count: number, baseDir?: string): Uint8Array | undefined {
  const byteLength = count * layout.raw.BYTES_PER_ELEMENT;
  if (isExternalTensor(tensor)) return readExternalTensorBytes(tensor, baseDir, byteLength);
  const raw = tensor.rawData;
  if (raw === undefined) return undefined;
  if (raw.byteLength !== byteLength) {
    throw new OnnxFormatError(
      `${label(tensor)}: raw_data holds ${raw.byteLength} bytes but dims [${tensor.dims.join(', ')}] of ` +
        `${dataTypeName(tensor.dataType ?? 0)} need ${byteLength}`,
    );
  }
  return raw;
}

function fieldValues(tensor: TensorProto, layout: ElementLayout, count: number): ArrayLike<number | bigint> {
  const values: ArrayLike<number | bigint> = tensor[layout.field];
  if (values.length !== count) {
    const what = values.length === 0 ? 'has no data' : `holds ${values.length} values in ${layout.field}`;
    throw new OnnxFormatError(`${label(tensor)} ${what} but dims [${tensor.dims.join(', ')}] need ${count}`);
  }
  return values;
}

function toNumbers(values: ArrayLike<Int64>): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(values[i]);
  return out;
}

function toBigInts(values: ArrayLike<Int64>, unsigned: boolean): BigInt64Array | BigUint64Array {
  const out = unsigned ? new BigUint64Array(values.length) : new BigInt64Array(values.length);
  for (let i = 0; i < out.length; i++) {
    const v = BigInt(values[i] as Int64);
    out[i] = unsigned ? BigInt.asUintN(64, v) : BigInt.asIntN(64, v);
  }
  return out;
}

/**
 * The values of a numeric tensor as a typed array (see the table at the top of this file).
 * Validates that the stored data matches the dims; reads external data from `baseDir`.
 */
export function decodeTensor(tensor: TensorProto, options: DecodeTensorOptions = {}): TensorArray {
  const layout = layoutOf(tensor);
  if (tensor.segment) throw new OnnxError(`${label(tensor)} is segmented, which this package cannot decode`);
  const count = tensorElementCount(tensor);
  const dataType = tensor.dataType as number;
  const bytes = storedBytes(tensor, layout, count, options.baseDir);
  const int64AsNumber = options.int64 === 'number';

  if (bytes !== undefined) {
    const stored = viewBytes(layout.raw, bytes, count);
    if (dataType === DataType.FLOAT16) return float16ToFloat32Array(stored as Uint16Array);
    if (dataType === DataType.BFLOAT16) return bfloat16ToFloat32Array(stored as Uint16Array);
    if (int64AsNumber && (stored instanceof BigInt64Array || stored instanceof BigUint64Array)) return toNumbers(stored);
    return stored;
  }

  const values = fieldValues(tensor, layout, count);
  switch (dataType) {
    case DataType.FLOAT16:
      return float16ToFloat32Array(values as ArrayLike<number>);
    case DataType.BFLOAT16:
      return bfloat16ToFloat32Array(values as ArrayLike<number>);
    case DataType.INT64:
    case DataType.UINT64:
      return int64AsNumber ? toNumbers(values as ArrayLike<Int64>) : toBigInts(values as ArrayLike<Int64>, dataType === DataType.UINT64);
    case DataType.UINT32: {
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(values[i]);
      return out;
    }
    default:
      return (layout.raw as Float64ArrayConstructor).from(values as ArrayLike<number>) as TensorArray;
  }
}

/**
 * The values of any numeric tensor as float32 (a view for FLOAT raw data, a converted copy
 * otherwise). Meant for weights and their statistics.
 */
export function decodeTensorAsFloat32(tensor: TensorProto, options: { baseDir?: string } = {}): Float32Array {
  const values = decodeTensor(tensor, { baseDir: options.baseDir, int64: 'number' });
  return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
}

/** Values accepted by `makeTensor`: typed arrays or plain arrays of numbers or bigints. */
export type TensorValues = ArrayLike<number> | ArrayLike<bigint>;

/**
 * The little-endian bytes of `values` stored as `dataType` (fp16/bf16 rounded to nearest even,
 * integers checked to be integral and in range).
 */
export function encodeTensorData(dataType: number, values: TensorValues): Uint8Array {
  const name = dataTypeName(dataType);
  const layout = LAYOUTS[dataType];
  if (!layout) throw new OnnxError(`cannot encode tensor data of type ${name}`);
  let stored: TensorArray;
  if (dataType === DataType.FLOAT16 || dataType === DataType.BFLOAT16) {
    const floats = numbersOf(values);
    stored = dataType === DataType.FLOAT16 ? float32ToFloat16Array(floats) : float32ToBfloat16Array(floats);
  } else if (layout.raw === BigInt64Array || layout.raw === BigUint64Array) {
    stored = new layout.raw(values.length);
    const unsigned = layout.raw === BigUint64Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number | bigint;
      if (typeof v === 'number' && !Number.isInteger(v)) throw new OnnxError(`${name} tensor value ${v} is not an integer`);
      const big = BigInt(v);
      if ((unsigned ? BigInt.asUintN(64, big) : BigInt.asIntN(64, big)) !== big) {
        throw new OnnxError(`${name} tensor value ${big} is out of range`);
      }
      stored[i] = big;
    }
  } else {
    const numbers = numbersOf(values);
    stored = new (layout.raw as Float64ArrayConstructor)(numbers.length) as TensorArray;
    const isFloat = layout.raw === Float32Array || layout.raw === Float64Array;
    for (let i = 0; i < numbers.length; i++) {
      const v = numbers[i] as number;
      (stored as Float64Array)[i] = v;
      if (!isFloat && (stored as Float64Array)[i] !== v) {
        throw new OnnxError(`${name} tensor value ${v} is not representable`);
      }
    }
  }
  return new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
}

function numbersOf(values: TensorValues): ArrayLike<number> {
  const isNumberTypedArray =
    ArrayBuffer.isView(values) && !(values instanceof BigInt64Array || values instanceof BigUint64Array);
  if (isNumberTypedArray) return values as ArrayLike<number>;
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Number(values[i]);
  return out;
}

/** The data type `makeTensor` picks for a typed array when none is given. */
export function dataTypeOf(values: TensorValues): number {
  if (values instanceof Float32Array) return DataType.FLOAT;
  if (values instanceof Float64Array) return DataType.DOUBLE;
  if (values instanceof Int8Array) return DataType.INT8;
  if (values instanceof Uint8Array) return DataType.UINT8;
  if (values instanceof Int16Array) return DataType.INT16;
  if (values instanceof Uint16Array) return DataType.UINT16;
  if (values instanceof Int32Array) return DataType.INT32;
  if (values instanceof Uint32Array) return DataType.UINT32;
  if (values instanceof BigInt64Array) return DataType.INT64;
  if (values instanceof BigUint64Array) return DataType.UINT64;
  if (values.length > 0 && typeof values[0] === 'bigint') return DataType.INT64;
  return DataType.FLOAT;
}

/** A TensorProto with every repeated field present; `fields` fills in the rest. */
export function newTensorProto(fields: Partial<TensorProto> = {}): TensorProto {
  return {
    dims: [],
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    externalData: [],
    doubleData: [],
    uint64Data: [],
    metadataProps: [],
    ...fields,
  };
}

/**
 * An initializer-style tensor holding `values` in `rawData` (the layout every exporter uses).
 * `dataType` defaults to the typed array's type (FLOAT for plain number arrays, INT64 for
 * bigint arrays); pass FLOAT16/BFLOAT16 to round float values. The element count must match
 * `dims`.
 */
export function makeTensor(name: string, dims: readonly number[], values: TensorValues, dataType = dataTypeOf(values)): TensorProto {
  const tensor = newTensorProto({ name, dims: [...dims], dataType });
  const count = tensorElementCount(tensor);
  if (values.length !== count) {
    throw new OnnxError(`tensor '${name}': ${values.length} values do not fill dims [${dims.join(', ')}] (${count} elements)`);
  }
  tensor.rawData = encodeTensorData(dataType, values);
  return tensor;
}
