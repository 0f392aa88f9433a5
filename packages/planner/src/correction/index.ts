export * from './refit';
export * from './bias';
