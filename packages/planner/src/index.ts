export * from './scoring';
export * from './search';
export * from './prune';
export * from './calibration';
export * from './correction';
