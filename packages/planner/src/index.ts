export * from './report/svg';
export * from './runtime/session';
