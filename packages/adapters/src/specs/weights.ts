import { drawMatrix, drawnSumOfSquares, type BiasVector, type MatrixRole, type WeightInit, type WeightMatrix } from '@zerolm/core';
import { describeValue, expectObject, expectPositiveNumber } from './validate';

/** Where a spec matrix comes from; kept on `WeightMatrix.source` for reports and debugging. */
export interface SpecMatrixSource {
  /** The spec format (`flexibert`, `lts-gpt2`, `zerolm-spec`). */
  readonly format: string;
  /** Architecture id within its benchmark. */
  readonly architecture: string;
  readonly layer: number;
  /** The seed string the values are drawn with. */
  readonly seed: string;
  /** Format-specific details (operation type, kernel size, ...). */
  readonly detail?: Readonly<Record<string, string | number>>;
}

/**
 * A matrix whose values are drawn on demand from `init`. The seed is built from the matrix's
 * identity (format, architecture, parameter name), never from a counter, so the same matrix
 * gets the same values whatever order, or subset, of matrices a caller asks for. Nothing is
 * cached: a caller that needs the values twice draws them twice (cheap next to keeping every
 * matrix of hundreds of architectures alive).
 */
export function drawnMatrix(
  name: string,
  role: MatrixRole,
  rows: number,
  cols: number,
  init: WeightInit,
  source: Omit<SpecMatrixSource, 'seed'>,
  seedPrefix?: string,
): WeightMatrix {
  const seed = `${seedPrefix === undefined ? '' : `${seedPrefix}|`}${source.format}/${source.architecture}/${name}`;
  return {
    name,
    role,
    rows,
    cols,
    init,
    source: { ...source, seed } satisfies SpecMatrixSource,
    values: () => drawMatrix(init, rows, cols, seed),
    sumOfSquares: () => drawnSumOfSquares(init, rows, cols, seed),
  };
}

export function biasVector(name: string, role: MatrixRole, length: number): BiasVector {
  return { name, role, length };
}

export function normalInit(std: number): WeightInit {
  return { kind: 'normal', std };
}

/** Parses a `WeightInit` written in JSON (`{"kind": "normal", "std": 0.02}` and the other kinds). */
export function parseWeightInit(value: unknown, where: string): WeightInit {
  const obj = expectObject(value, where);
  switch (obj['kind']) {
    case 'normal':
      return { kind: 'normal', std: expectPositiveNumber(obj['std'], `${where}.std`) };
    case 'truncated-normal':
      return {
        kind: 'truncated-normal',
        std: expectPositiveNumber(obj['std'], `${where}.std`),
        bound: expectPositiveNumber(obj['bound'], `${where}.bound`),
      };
    case 'uniform':
      return { kind: 'uniform', bound: expectPositiveNumber(obj['bound'], `${where}.bound`) };
    case 'zeros':
      return { kind: 'zeros' };
    default:
      throw new Error(
        `${where}.kind must be one of normal, truncated-normal, uniform, zeros (got ${describeValue(obj['kind'])})`,
      );
  }
}
