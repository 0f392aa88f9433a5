export * from './calibrate';
export * from './sequences';
export * from './statistics';
export * from './obs';
export * from './ablation';
export { cholesky, inverseSpd, solveSpd } from './dense';
export * from './algebra';
export * from './text-sequences';
export * from './masked-lm-sampling';
