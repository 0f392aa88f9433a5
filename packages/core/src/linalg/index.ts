export { singularValues, defaultProductKernels } from './singular-values';
export type { ProductKernels, SingularValueOptions } from './singular-values';
export { frobeniusNormSquared } from './norms';
export { subtractMatrixProduct } from './matrix-product';
