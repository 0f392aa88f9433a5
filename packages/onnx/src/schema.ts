/**
 * The ONNX protobuf schema (onnx/onnx.proto, IR version 10/11 field set) as a protobufjs JSON
 * descriptor. It lives in a TypeScript module so the compiled package carries it without a
 * loose `.proto` file. Field names are camelCase (the wire format only knows field numbers);
 * every number below matches the official onnx.proto.
 */

type FieldDescriptor = {
  id: number;
  type: string;
  rule?: 'repeated';
  options?: { packed: boolean };
};

type TypeDescriptor = {
  edition?: string;
  fields: Record<string, FieldDescriptor>;
  nested?: Record<string, TypeDescriptor | EnumDescriptor>;
};

type EnumDescriptor = { values: Record<string, number> };

const opt = (id: number, type: string): FieldDescriptor => ({ id, type });
const rep = (id: number, type: string): FieldDescriptor => ({ id, type, rule: 'repeated' });
/** onnx.proto marks the numeric data fields of TensorProto `[packed = true]`; proto2 default is unpacked. */
const packed = (id: number, type: string): FieldDescriptor => ({
  id,
  type,
  rule: 'repeated',
  options: { packed: true },
});

/** Top-level messages carry `edition: proto2` because protobufjs treats JSON types as proto3 otherwise. */
function message(
  fields: Record<string, FieldDescriptor>,
  nested?: Record<string, TypeDescriptor | EnumDescriptor>,
): TypeDescriptor {
  return nested ? { edition: 'proto2', fields, nested } : { edition: 'proto2', fields };
}

export const ONNX_SCHEMA = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: message(
          {
            name: opt(1, 'string'),
            refAttrName: opt(21, 'string'),
            docString: opt(13, 'string'),
            type: opt(20, 'int32'),
            f: opt(2, 'float'),
            i: opt(3, 'int64'),
            s: opt(4, 'bytes'),
            t: opt(5, 'TensorProto'),
            g: opt(6, 'GraphProto'),
            sparseTensor: opt(22, 'SparseTensorProto'),
            tp: opt(14, 'TypeProto'),
            floats: rep(7, 'float'),
            ints: rep(8, 'int64'),
            strings: rep(9, 'bytes'),
            tensors: rep(10, 'TensorProto'),
            graphs: rep(11, 'GraphProto'),
            sparseTensors: rep(23, 'SparseTensorProto'),
            typeProtos: rep(15, 'TypeProto'),
          },
        ),
        ValueInfoProto: message({
          name: opt(1, 'string'),
          type: opt(2, 'TypeProto'),
          docString: opt(3, 'string'),
          metadataProps: rep(4, 'StringStringEntryProto'),
        }),
        NodeProto: message({
          input: rep(1, 'string'),
          output: rep(2, 'string'),
          name: opt(3, 'string'),
          opType: opt(4, 'string'),
          domain: opt(7, 'string'),
          overload: opt(8, 'string'),
          attribute: rep(5, 'AttributeProto'),
          docString: opt(6, 'string'),
          metadataProps: rep(9, 'StringStringEntryProto'),
          deviceConfigurations: rep(10, 'NodeDeviceConfigurationProto'),
        }),
        IntIntListEntryProto: message({
          key: opt(1, 'int64'),
          value: rep(2, 'int64'),
        }),
        NodeDeviceConfigurationProto: message({
          configurationId: opt(1, 'string'),
          shardingSpec: rep(2, 'ShardingSpecProto'),
          pipelineStage: opt(3, 'int32'),
        }),
        ShardingSpecProto: message({
          tensorName: opt(1, 'string'),
          device: rep(2, 'int64'),
          indexToDeviceGroupMap: rep(3, 'IntIntListEntryProto'),
          shardedDim: rep(4, 'ShardedDimProto'),
        }),
        ShardedDimProto: message({
          axis: opt(1, 'int64'),
          simpleSharding: rep(2, 'SimpleShardedDimProto'),
        }),
        SimpleShardedDimProto: message({
          dimValue: opt(1, 'int64'),
          dimParam: opt(2, 'string'),
          numShards: opt(3, 'int64'),
        }),
        TrainingInfoProto: message({
          initialization: opt(1, 'GraphProto'),
          algorithm: opt(2, 'GraphProto'),
          initializationBinding: rep(3, 'StringStringEntryProto'),
          updateBinding: rep(4, 'StringStringEntryProto'),
        }),
        ModelProto: message({
          irVersion: opt(1, 'int64'),
          opsetImport: rep(8, 'OperatorSetIdProto'),
          producerName: opt(2, 'string'),
          producerVersion: opt(3, 'string'),
          domain: opt(4, 'string'),
          modelVersion: opt(5, 'int64'),
          docString: opt(6, 'string'),
          graph: opt(7, 'GraphProto'),
          metadataProps: rep(14, 'StringStringEntryProto'),
          trainingInfo: rep(20, 'TrainingInfoProto'),
          functions: rep(25, 'FunctionProto'),
          configuration: rep(26, 'DeviceConfigurationProto'),
        }),
        DeviceConfigurationProto: message({
          name: opt(1, 'string'),
          numDevices: opt(2, 'int32'),
          device: rep(3, 'string'),
        }),
        StringStringEntryProto: message({
          key: opt(1, 'string'),
          value: opt(2, 'string'),
        }),
        TensorAnnotation: message({
          tensorName: opt(1, 'string'),
          quantParameterTensorNames: rep(2, 'StringStringEntryProto'),
        }),
        GraphProto: message({
          node: rep(1, 'NodeProto'),
          name: opt(2, 'string'),
          initializer: rep(5, 'TensorProto'),
          sparseInitializer: rep(15, 'SparseTensorProto'),
          docString: opt(10, 'string'),
          input: rep(11, 'ValueInfoProto'),
          output: rep(12, 'ValueInfoProto'),
          valueInfo: rep(13, 'ValueInfoProto'),
          quantizationAnnotation: rep(14, 'TensorAnnotation'),
          metadataProps: rep(16, 'StringStringEntryProto'),
        }),
        TensorProto: message(
          {
            dims: rep(1, 'int64'),
            dataType: opt(2, 'int32'),
            segment: opt(3, 'Segment'),
            floatData: packed(4, 'float'),
            int32Data: packed(5, 'int32'),
            stringData: rep(6, 'bytes'),
            int64Data: packed(7, 'int64'),
            name: opt(8, 'string'),
            docString: opt(12, 'string'),
            rawData: opt(9, 'bytes'),
            externalData: rep(13, 'StringStringEntryProto'),
            dataLocation: opt(14, 'int32'),
            doubleData: packed(10, 'double'),
            uint64Data: packed(11, 'uint64'),
            metadataProps: rep(16, 'StringStringEntryProto'),
          },
          {
            Segment: { fields: { begin: opt(1, 'int64'), end: opt(2, 'int64') } },
          },
        ),
        SparseTensorProto: message({
          values: opt(1, 'TensorProto'),
          indices: opt(2, 'TensorProto'),
          dims: rep(3, 'int64'),
        }),
        TensorShapeProto: message(
          { dim: rep(1, 'Dimension') },
          {
            Dimension: {
              fields: {
                dimValue: opt(1, 'int64'),
                dimParam: opt(2, 'string'),
                denotation: opt(3, 'string'),
              },
            },
          },
        ),
        TypeProto: message(
          {
            tensorType: opt(1, 'Tensor'),
            sequenceType: opt(4, 'Sequence'),
            mapType: opt(5, 'Map'),
            optionalType: opt(9, 'Optional'),
            sparseTensorType: opt(8, 'SparseTensor'),
            opaqueType: opt(7, 'Opaque'),
            denotation: opt(6, 'string'),
          },
          {
            Tensor: { fields: { elemType: opt(1, 'int32'), shape: opt(2, 'TensorShapeProto') } },
            Sequence: { fields: { elemType: opt(1, 'TypeProto') } },
            Map: { fields: { keyType: opt(1, 'int32'), valueType: opt(2, 'TypeProto') } },
            Optional: { fields: { elemType: opt(1, 'TypeProto') } },
            SparseTensor: { fields: { elemType: opt(1, 'int32'), shape: opt(2, 'TensorShapeProto') } },
            Opaque: { fields: { domain: opt(1, 'string'), name: opt(2, 'string') } },
          },
        ),
        OperatorSetIdProto: message({
          domain: opt(1, 'string'),
          version: opt(2, 'int64'),
        }),
        FunctionProto: message({
          name: opt(1, 'string'),
          input: rep(4, 'string'),
          output: rep(5, 'string'),
          attribute: rep(6, 'string'),
          attributeProto: rep(11, 'AttributeProto'),
          node: rep(7, 'NodeProto'),
          docString: opt(8, 'string'),
          opsetImport: rep(9, 'OperatorSetIdProto'),
          domain: opt(10, 'string'),
          overload: opt(13, 'string'),
          valueInfo: rep(12, 'ValueInfoProto'),
          metadataProps: rep(14, 'StringStringEntryProto'),
        }),
      },
    },
  },
};
