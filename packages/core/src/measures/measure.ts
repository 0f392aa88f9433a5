import { frobeniusNormSquared } from '../linalg/norms';
import type { Matrix, WeightInit } from '../module-graph';
import { createRegistry } from '../registry';

/**
 * A capacity measure maps one weight matrix to a number: how much the matrix can express.
 * Each measure is one registered entry; its formula is in its doc comment.
 */
export interface CapacityMeasure {
  readonly name: string;
  /** One line: the formula, for `--help` and docs. */
  readonly description: string;
  /** Whether the value needs the singular values (an SVD) or only cheap statistics. */
  readonly needsSpectrum: boolean;
  /** The measure of a concrete matrix. */
  ofMatrix(matrix: Matrix): number;
  /**
   * The measure from ||W||_F^2 alone, for measures that need nothing else (msv, nuclear-bound); lets a matrix
   * that can stream its sum of squares skip materialising its values.
   */
  fromSumOfSquares?(sumOfSquares: number, rows: number, cols: number): number;
  /**
   * The expected value of the measure for a `rows x cols` matrix with i.i.d. entries drawn from
   * `init`, computed without drawing weights. Absent when the measure has no such formula.
   */
  expected?(rows: number, cols: number, init: WeightInit): number;
}

const measures = createRegistry<CapacityMeasure>('capacity measure');

export const registerMeasure = measures.register;
export const getMeasure = measures.get;
export const listMeasures = measures.list;

/**
 * A measure computed from ||W||_F^2 and the shape alone: `ofMatrix` sums the squares, and a
 * non-finite sum (NaN or infinite entries, or entries too large to square) is an error.
 */
export function sumOfSquaresMeasure(spec: {
  name: string;
  description: string;
  /** The value from a finite ||W||_F^2 and the shape. */
  fromFiniteSumOfSquares(squares: number, rows: number, cols: number): number;
  expected(rows: number, cols: number, init: WeightInit): number;
}): CapacityMeasure & Required<Pick<CapacityMeasure, 'fromSumOfSquares' | 'expected'>> {
  const fromSumOfSquares = (squares: number, rows: number, cols: number): number => {
    if (!Number.isFinite(squares)) {
      throw new Error(`${spec.name}: ||W||_F^2 of the ${rows} x ${cols} matrix is not finite (NaN or infinite entries, or entries too large to square)`);
    }
    return spec.fromFiniteSumOfSquares(squares, rows, cols);
  };
  return {
    name: spec.name,
    description: spec.description,
    needsSpectrum: false,
    ofMatrix: (matrix) => fromSumOfSquares(frobeniusNormSquared(matrix), matrix.rows, matrix.cols),
    fromSumOfSquares,
    expected: spec.expected,
  };
}
