/**
 * @zerolm/onnx: read and write ONNX models (protobuf), decode and encode tensors (including
 * external data and quantized weights), and small generic graph helpers.
 */
export * from './errors';
export * from './proto';
export * from './float16';
export * from './tensor';
export * from './external';
export * from './attributes';
export * from './builders';
export * from './model-file';
export * from './graph';
export * from './weights';
export * from './quant';
