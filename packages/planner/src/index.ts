export * from './report/svg';
export * from './runtime/session';
export * from './compare';
export * from './scoring';
export * from './search';
export * from './export';
export * from './prune';
