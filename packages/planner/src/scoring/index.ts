export * from './unit-norms';
export * from './importance';
export * from './ranking';
export * from './capacity-table';
export * from './masks';
export * from './onnx-scorer';
export * from './backend';
export * from './self-generated';
