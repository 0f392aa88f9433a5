export * from './report/svg';
