/** Weight formats: the block and linear quantizers of onnxruntime and the float16 conversion, over lazy graphs. */
export * from './rounding';
export * from './linear8';
export * from './nbits';
export * from './bnb4';
export * from './lazy-graph';
export * from './convert';
