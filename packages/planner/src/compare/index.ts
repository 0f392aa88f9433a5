export * from './compare';
export * from './latency';
export * from './metrics';
export * from './plot';
export * from './runner';
export * from './text';
export * from './tokenizer';
