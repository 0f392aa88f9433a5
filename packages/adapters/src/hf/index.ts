export * from './config';
export * from './match';
export * from './model';
