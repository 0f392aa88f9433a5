import type { CapacityMeasure } from '../measures/measure';
import { getMeasure } from '../measures/measure';
import type { AttentionModule, FfnModule, ModuleGraph, WeightMatrix } from '../module-graph';

/**
 * How a matrix's capacity is obtained: `sampled` measures the matrix's values (drawn or loaded);
 * `expected` uses the measure's expected value for the matrix's init distribution, without
 * drawing weights (matrices without an `init`, i.e. loaded weights, are always measured).
 */
export type InitMode = 'sampled' | 'expected';

export interface CapacityOptions {
  measure?: CapacityMeasure | string;
  init?: InitMode;
}

export interface MatrixCapacity {
  /** The role the matrix plays in its module: q, k, v, o, up, gate, down (or mix). */
  name: WeightMatrix['role'];
  /** Where the values come from (initializer name, spec path). */
  tensor: string;
  /** [rows, cols] as the module uses the matrix (y = x · W). */
  shape: [number, number];
  capacity: number;
}

export interface ModuleCapacity {
  /** Sum of the module's matrix capacities. */
  capacity: number;
  matrices: MatrixCapacity[];
}

export interface LayerCapacity {
  index: number;
  attention: ModuleCapacity;
  ffn: ModuleCapacity;
}

export interface GraphCapacity {
  measure: string;
  init: InitMode;
  layers: LayerCapacity[];
  /** Sum over layers of the Attention capacities. */
  attention: number;
  /** Sum over layers of the FFN capacities. */
  ffn: number;
}

export function resolveMeasure(measure: CapacityMeasure | string | undefined): CapacityMeasure {
  if (measure === undefined) return getMeasure('msv');
  return typeof measure === 'string' ? getMeasure(measure) : measure;
}

export function matrixCapacity(matrix: WeightMatrix, measure: CapacityMeasure, init: InitMode = 'sampled'): number {
  if (init === 'expected' && matrix.init && measure.expected) {
    return measure.expected(matrix.rows, matrix.cols, matrix.init);
  }
  const value =
    measure.fromSumOfSquares && matrix.sumOfSquares
      ? measure.fromSumOfSquares(matrix.sumOfSquares(), matrix.rows, matrix.cols)
      : measure.ofMatrix({ rows: matrix.rows, cols: matrix.cols, data: matrix.values() });
  if (!Number.isFinite(value)) {
    throw new Error(`capacity "${measure.name}" of ${matrix.name} (${matrix.rows}x${matrix.cols}) is not finite: the weights contain NaN or Inf`);
  }
  return value;
}

function moduleCapacity(module: AttentionModule | FfnModule, measure: CapacityMeasure, init: InitMode): ModuleCapacity {
  const matrices = module.matrices.map((m) => ({
    name: m.role,
    tensor: m.name,
    shape: [m.rows, m.cols] as [number, number],
    capacity: matrixCapacity(m, measure, init),
  }));
  return { capacity: matrices.reduce((s, m) => s + m.capacity, 0), matrices };
}

/** Per-matrix, per-module and per-layer capacities of a module graph. */
export function graphCapacity(graph: ModuleGraph, options: CapacityOptions = {}): GraphCapacity {
  const measure = resolveMeasure(options.measure);
  const init = options.init ?? 'sampled';
  const layers = graph.layers.map((layer) => ({
    index: layer.index,
    attention: moduleCapacity(layer.attention, measure, init),
    ffn: moduleCapacity(layer.ffn, measure, init),
  }));
  return {
    measure: measure.name,
    init,
    layers,
    attention: layers.reduce((s, l) => s + l.attention.capacity, 0),
    ffn: layers.reduce((s, l) => s + l.ffn.capacity, 0),
  };
}
