export * from './compare';
export * from './latency';
export * from './metrics';
export * from './plot';
export * from './text';
export * from './svg';
export * from './masked-lm';
