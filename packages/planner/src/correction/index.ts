export * from './refit';
