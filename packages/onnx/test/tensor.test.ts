import {
  DataType,
  OnnxError,
  OnnxFormatError,
  bfloat16BitsToFloat32,
  decodeModel,
  decodeTensor,
  decodeTensorAsFloat32,
  encodeModel,
  encodeTensorData,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  makeGraph,
  makeModel,
  makeTensor,
  newTensorProto,
} from '../src';

describe('float16 and bfloat16', () => {
  it('decodes known float16 bit patterns', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
  });

  it('maps every float16 value back to its own bit pattern', () => {
    for (let bits = 0; bits < 65536; bits++) {
      const value = float16BitsToFloat32(bits);
      if (Number.isNaN(value)) {
        expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(value)))).toBe(true);
        continue;
      }
      if (float32ToFloat16Bits(value) !== bits) throw new Error(`0x${bits.toString(16)} -> ${value} -> 0x${float32ToFloat16Bits(value).toString(16)}`);
    }
  });

  it('rounds float32 to float16 to nearest, ties to even, with overflow and underflow', () => {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to the even mantissa (1)
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even)
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // rounds up past the largest finite value
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff);
    expect(float32ToFloat16Bits(1e10)).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // halfway to the smallest subnormal: even is zero
    expect(float32ToFloat16Bits(2 ** -25 + 2 ** -35)).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
  });

  it('converts bfloat16 with round to nearest even', () => {
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(bfloat16BitsToFloat32(0xc040)).toBe(-3);
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even
    expect(float32ToBfloat16Bits(1 + 2 ** -8 + 2 ** -16)).toBe(0x3f81);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN)))).toBe(true);
    for (let bits = 0; bits < 65536; bits += 7) {
      const value = bfloat16BitsToFloat32(bits);
      if (!Number.isNaN(value)) expect(float32ToBfloat16Bits(value)).toBe(bits);
    }
  });
});

/** Decodes after a real encode/decode trip, so raw_data is a view at an arbitrary offset. */
function throughBytes(tensor: ReturnType<typeof newTensorProto>): ReturnType<typeof newTensorProto> {
  const model = makeModel(makeGraph({ nodes: [], inputs: [], outputs: [], initializers: [tensor] }));
  const decoded = decodeModel(encodeModel(model)).graph?.initializer[0];
  if (!decoded) throw new Error('lost the tensor');
  return decoded;
}

describe('decodeTensor', () => {
  it('decodes every numeric type from raw_data', () => {
    const cases: [number, ArrayLike<number> | ArrayLike<bigint>, unknown][] = [
      [DataType.FLOAT, new Float32Array([1.5, -2, 3e-8]), Float32Array],
      [DataType.DOUBLE, new Float64Array([Math.PI, -1e300]), Float64Array],
      [DataType.INT8, new Int8Array([-128, 0, 127]), Int8Array],
      [DataType.UINT8, new Uint8Array([0, 200, 255]), Uint8Array],
      [DataType.INT16, new Int16Array([-32768, 5]), Int16Array],
      [DataType.UINT16, new Uint16Array([65535, 5]), Uint16Array],
      [DataType.INT32, new Int32Array([-2147483648, 2147483647]), Int32Array],
      [DataType.UINT32, new Uint32Array([4294967295, 1]), Uint32Array],
      [DataType.INT64, new BigInt64Array([-9223372036854775808n, 9223372036854775807n, 3n]), BigInt64Array],
      [DataType.UINT64, new BigUint64Array([18446744073709551615n, 0n]), BigUint64Array],
      [DataType.BOOL, new Uint8Array([1, 0, 1]), Uint8Array],
    ];
    for (const [dataType, values, type] of cases) {
      const tensor = throughBytes(makeTensor('t', [values.length], values, dataType));
      const decoded = decodeTensor(tensor);
      expect(decoded).toBeInstanceOf(type);
      expect([...decoded]).toEqual([...(values as ArrayLike<unknown> & Iterable<unknown>)]);
    }
  });

  it('decodes float16 and bfloat16 raw data to float32', () => {
    const values = [1, -2.5, 0.0999755859375, 65504];
    const half = throughBytes(makeTensor('h', [2, 2], values, DataType.FLOAT16));
    expect(half.rawData?.byteLength).toBe(8);
    expect(decodeTensor(half)).toEqual(new Float32Array(values));
    const brain = throughBytes(makeTensor('b', [4], [1, -2.5, 0.09375, 3.3895313892515355e38], DataType.BFLOAT16));
    expect(decodeTensor(brain)).toEqual(new Float32Array([1, -2.5, 0.09375, 3.3895313892515355e38]));
  });

  it('returns a zero-copy view when raw data is aligned and copies only when it is not', () => {
    const backing = new Uint8Array(20);
    new Float32Array(backing.buffer, 4, 3).set([1, 2, 3]);
    const aligned = newTensorProto({ name: 'a', dataType: DataType.FLOAT, dims: [3], rawData: backing.subarray(4, 16) });
    const view = decodeTensor(aligned) as Float32Array;
    expect(view.buffer).toBe(backing.buffer);
    expect([...view]).toEqual([1, 2, 3]);

    const shifted = new Uint8Array(21);
    shifted.set(backing.subarray(4, 16), 1);
    const unaligned = newTensorProto({ name: 'u', dataType: DataType.FLOAT, dims: [3], rawData: shifted.subarray(1, 13) });
    const copy = decodeTensor(unaligned) as Float32Array;
    expect(copy.buffer).not.toBe(shifted.buffer);
    expect([...copy]).toEqual([1, 2, 3]);
  });

  it('decodes the typed fields, including fp16/bf16/int8 carried in int32_data', () => {
    expect(decodeTensor(newTensorProto({ dataType: DataType.FLOAT, dims: [2], floatData: [0.5, 2] }))).toEqual(new Float32Array([0.5, 2]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.DOUBLE, dims: [1], doubleData: [0.1] }))).toEqual(new Float64Array([0.1]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.FLOAT16, dims: [2], int32Data: [0x3c00, 0xc000] }))).toEqual(new Float32Array([1, -2]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.BFLOAT16, dims: [1], int32Data: [0x3f80] }))).toEqual(new Float32Array([1]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.INT8, dims: [2], int32Data: [-5, 100] }))).toEqual(new Int8Array([-5, 100]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.UINT8, dims: [2], int32Data: [0, 255] }))).toEqual(new Uint8Array([0, 255]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.INT32, dims: [1], int32Data: [-7] }))).toEqual(new Int32Array([-7]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.UINT32, dims: [1], uint64Data: [4294967295] }))).toEqual(new Uint32Array([4294967295]));
    const int64 = newTensorProto({ dataType: DataType.INT64, dims: [3], int64Data: [-1, 9223372036854775807n, 5] });
    expect(decodeTensor(int64)).toEqual(new BigInt64Array([-1n, 9223372036854775807n, 5n]));
    expect(decodeTensor(newTensorProto({ dataType: DataType.UINT64, dims: [1], uint64Data: [18446744073709551615n] }))).toEqual(
      new BigUint64Array([18446744073709551615n]),
    );
  });

  it('gives int64 as numbers on request: exact within 2^53, nearest double beyond', () => {
    const raw = makeTensor('shape', [3], new BigInt64Array([-1n, 96n, 9223372036854775807n]));
    expect(decodeTensor(raw, { int64: 'number' })).toEqual(new Float64Array([-1, 96, 9223372036854775807]));
    const typed = newTensorProto({ dataType: DataType.INT64, dims: [2], int64Data: [7, -9223372036854775808n] });
    expect(decodeTensor(typed, { int64: 'number' })).toEqual(new Float64Array([7, -9223372036854775808]));
  });

  it('decodes scalars (no dims) and empty tensors', () => {
    expect(decodeTensor(makeTensor('s', [], new Float32Array([4])))).toEqual(new Float32Array([4]));
    expect(decodeTensor(makeTensor('e', [0, 3], new Float32Array(0)))).toEqual(new Float32Array(0));
    expect(decodeTensor(newTensorProto({ name: 'e2', dataType: DataType.FLOAT, dims: [2, 0] }))).toEqual(new Float32Array(0));
  });

  it('converts any numeric type to float32', () => {
    expect(decodeTensorAsFloat32(makeTensor('i', [3], new Int8Array([-1, 0, 5])))).toEqual(new Float32Array([-1, 0, 5]));
    expect(decodeTensorAsFloat32(makeTensor('l', [2], new BigInt64Array([3n, -4n])))).toEqual(new Float32Array([3, -4]));
    const f = makeTensor('f', [2], new Float32Array([1, 2]));
    expect(decodeTensorAsFloat32(f).buffer).toBe(f.rawData?.buffer);
  });

  it('rejects data that does not match the dims, with the tensor name', () => {
    const short = newTensorProto({ name: 'w', dataType: DataType.FLOAT, dims: [2, 3], rawData: new Uint8Array(20) });
    expect(() => decodeTensor(short)).toThrow(OnnxFormatError);
    expect(() => decodeTensor(short)).toThrow("tensor 'w': raw_data holds 20 bytes but dims [2, 3] of FLOAT need 24");
    expect(() => decodeTensor(newTensorProto({ name: 'f', dataType: DataType.FLOAT, dims: [3], floatData: [1] }))).toThrow(
      "tensor 'f' holds 1 values in floatData but dims [3] need 3",
    );
    expect(() => decodeTensor(newTensorProto({ name: 'n', dataType: DataType.FLOAT, dims: [3] }))).toThrow("tensor 'n' has no data but dims [3] need 3");
    expect(() => decodeTensor(newTensorProto({ name: 'd', dataType: DataType.FLOAT, dims: [-1], floatData: [] }))).toThrow(
      "tensor 'd' has an invalid dimension -1",
    );
    expect(() => decodeTensor(newTensorProto({ name: 'h', dataType: DataType.FLOAT, dims: [2 ** 30, 2 ** 30, 2 ** 30] }))).toThrow(
      /tensor 'h' has too many elements/,
    );
  });

  it('refuses types it cannot decode with an OnnxError naming the type', () => {
    const strings = newTensorProto({ name: 's', dataType: DataType.STRING, dims: [1], stringData: [new Uint8Array([97])] });
    expect(() => decodeTensor(strings)).toThrow(OnnxError);
    expect(() => decodeTensor(strings)).toThrow("tensor 's' has data type STRING, which this package cannot decode");
    expect(() => decodeTensor(newTensorProto({ name: 'x', dataType: 99, dims: [] }))).toThrow(/DATA_TYPE_99/);
    expect(() => decodeTensor(newTensorProto({ name: 'u', dims: [] }))).toThrow(/UNDEFINED/);
  });
});

describe('makeTensor and encodeTensorData', () => {
  it('infers the data type from the typed array and stores raw little-endian bytes', () => {
    const t = makeTensor('w', [2], new Float32Array([1, -2]));
    expect(t.dataType).toBe(DataType.FLOAT);
    expect([...(t.rawData ?? [])]).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    expect(makeTensor('i', [1], new BigInt64Array([1n])).dataType).toBe(DataType.INT64);
    expect(makeTensor('i', [1], [5n]).dataType).toBe(DataType.INT64);
    expect(makeTensor('q', [1], new Int8Array([1])).dataType).toBe(DataType.INT8);
    expect(makeTensor('q', [1], new Uint8Array([1])).dataType).toBe(DataType.UINT8);
    expect(makeTensor('p', [2], [1, 2]).dataType).toBe(DataType.FLOAT);
  });

  it('writes int64 from numbers and float16 from floats', () => {
    expect(decodeTensor(makeTensor('s', [2], [-1, 4], DataType.INT64))).toEqual(new BigInt64Array([-1n, 4n]));
    const half = makeTensor('h', [3], new Float32Array([1, 0.1, -3]), DataType.FLOAT16);
    expect([...new Uint16Array(half.rawData?.slice().buffer ?? new ArrayBuffer(0))]).toEqual([0x3c00, 0x2e66, 0xc200]);
  });

  it('rejects values that do not fit the type or the dims', () => {
    expect(() => encodeTensorData(DataType.INT8, [200])).toThrow('INT8 tensor value 200 is not representable');
    expect(() => encodeTensorData(DataType.INT32, [1.5])).toThrow(/not representable/);
    expect(() => encodeTensorData(DataType.INT64, [1.5])).toThrow(/not an integer/);
    expect(() => encodeTensorData(DataType.UINT64, [-1n])).toThrow(/out of range/);
    expect(() => encodeTensorData(DataType.STRING, [1])).toThrow(/cannot encode tensor data of type STRING/);
    expect(() => makeTensor('w', [2, 2], new Float32Array(3))).toThrow("tensor 'w': 3 values do not fill dims [2, 2] (4 elements)");
  });
});
