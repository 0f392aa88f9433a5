/** Model checks shared by tests: direct onnxruntime-node runs to compare transformers.js with. */
export * from './generation';
