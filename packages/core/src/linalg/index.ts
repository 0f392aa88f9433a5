export { singularValues } from './singular-values';
export { frobeniusNormSquared } from './norms';
