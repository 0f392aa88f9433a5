/**
 * Module capacities of the candidates the planner can make. A candidate keeps, in each layer,
 * the top-k units by importance, and the ZeroLM score is a sum over layers of a term that depends
 * on that layer's Attention capacity A_l and FFN capacity F_l only. So every candidate's score is
 * a sum of entries of one table: A_l(kept groups) and F_l(kept neurons). Backends fill it:
 *
 * - `sumOfSquaresTable` (TypeScript, `msv` and `nuclear-bound`): ||W_kept||_F^2 is the sum of the
 *   kept units' squared slice norms, so each entry is the measure of a prefix sum over the
 *   importance order and the cut matrix's shape; exact in float64.
 * - `gatherTable` (TypeScript, any measure, the only way for nuclear, logdet, erank, srank):
 *   gathers the kept rows/columns exactly as `prunedGraph` does and applies the measure,
 *   caching each (layer, matrix, kept count), computed on first use.
 * - the onnxruntime backend (onnx-scorer.ts) scores batches of masked sub-networks and stores
 *   the module capacities they report (`FilledTable`).
 *
 * Every entry equals the capacity `graphCapacity(prunedGraph(graph, plan))` reports for that
 * layer's module (same measure, `sampled` weights).
 */
import {
  cutAxis,
  gatherMatrix,
  groupRange,
  hasPrunableHeads,
  type AttentionModule,
  type CapacityMeasure,
  type FloatArray,
  type Layer,
  type ModuleGraph,
  type WeightMatrix,
  resolveMeasure,
} from '@zerolm/core';
import { topUnits, type UnitRanking } from './ranking';
import { nonFiniteMatrix, squaredFrobenius, unitSliceNorms, type UnitKind } from './unit-norms';

const { min } = Math;

type SumOfSquaresMeasure = CapacityMeasure & Required<Pick<CapacityMeasure, 'fromSumOfSquares'>>;

/**
 * The measure as a function of ||W||_F^2 and the shape, or an error naming the measures that
 * have one (the others need singular values: no mask arithmetic gives them).
 */
export function sumOfSquaresForm(measure: CapacityMeasure | string | undefined): SumOfSquaresMeasure {
  const resolved = resolveMeasure(measure);
  if (!resolved.fromSumOfSquares) throw new Error(`measure "${resolved.name}" needs singular values: masked sub-networks are scored only with msv or nuclear-bound`);
  return resolved as SumOfSquaresMeasure;
}

export interface CapacityTable {
  /** Capacity A_l of layer `layer`'s Attention module keeping its `groups` most important kv groups. */
  attention(layer: number, groups: number): number;
  /** Capacity F_l of layer `layer`'s FFN keeping its `neurons` most important neurons. */
  ffn(layer: number, neurons: number): number;
}

/** The module a unit kind lives in. */
export function moduleOf(layer: Layer, kind: UnitKind): Layer['attention'] | Layer['ffn'] {
  return kind === 'heads' ? layer.attention : layer.ffn;
}

/** Whether `matrix` is cut by the units of `kind` in `layer` (else it is kept whole). */
export function isCut(layer: Layer, kind: UnitKind, matrix: WeightMatrix): boolean {
  return cutAxis(matrix) !== undefined && (kind === 'ffn' || hasPrunableHeads(layer.attention));
}

function checkCapacity(value: number, measure: CapacityMeasure, matrix: WeightMatrix): number {
  if (!Number.isFinite(value)) {
    throw new Error(`capacity "${measure.name}" of ${matrix.name} is not finite: the weights contain NaN or Inf`);
  }
  return value;
}

interface SumOfSquaresModule {
  /** Capacity of the matrices the units do not cut. */
  constant: number;
  /** Per cut matrix: prefix[k] = squared norm of its slices of the top-k units. */
  prefix: Float64Array[];
  width: number[];
  /** Per cut matrix: the dimension the units do not cut. */
  other: number[];
}

function sumOfSquaresModule(layer: Layer, kind: UnitKind, order: readonly number[], measure: SumOfSquaresMeasure): SumOfSquaresModule {
  const slices = unitSliceNorms(layer, kind);
  let constant = 0;
  for (const m of moduleOf(layer, kind).matrices) {
    if (slices.matrices.includes(m)) continue;
    if (min(m.rows, m.cols) > 0) constant += measure.fromSumOfSquares(squaredFrobenius(m), m.rows, m.cols);
  }
  const prefix = slices.norms.map((norms) => {
    const sums = new Float64Array(slices.units + 1);
    for (let k = 0; k < slices.units; k++) sums[k + 1] = sums[k]! + norms[order[k]!]!;
    return sums;
  });
  const other = slices.matrices.map((m) => (cutAxis(m) === 'cols' ? m.rows : m.cols));
  return { constant, prefix, width: slices.width, other };
}

function sumOfSquaresAt(module: SumOfSquaresModule, kept: number, measure: SumOfSquaresMeasure): number {
  let capacity = module.constant;
  for (let i = 0; i < module.prefix.length; i++) {
    const cut = kept * module.width[i]!;
    if (min(module.other[i]!, cut) > 0) capacity += measure.fromSumOfSquares(module.prefix[i]![kept]!, cut, module.other[i]!);
  }
  return capacity;
}

/**
 * The exact table of a measure computed from ||W||_F^2 (`msv`, `nuclear-bound`; default `msv`),
 * from per-unit squared norms (no weights kept in memory).
 */
export function sumOfSquaresTable(graph: ModuleGraph, ranking: UnitRanking, measure?: CapacityMeasure | string): CapacityTable {
  const form = sumOfSquaresForm(measure);
  const attention = graph.layers.map((layer, l) => sumOfSquaresModule(layer, 'heads', ranking.groups[l]!, form));
  const ffn = graph.layers.map((layer, l) => sumOfSquaresModule(layer, 'ffn', ranking.neurons[l]!, form));
  return {
    attention: (layer, groups) => sumOfSquaresAt(attention[layer]!, groups, form),
    ffn: (layer, neurons) => sumOfSquaresAt(ffn[layer]!, neurons, form),
  };
}

/** Indices along `matrix`'s cut axis that the given kept units own, ascending (as `keptIndices`). */
function keptAxisIndices(attention: AttentionModule, kind: UnitKind, matrix: WeightMatrix, keptUnits: readonly number[]): number[] {
  if (kind === 'ffn') return [...keptUnits];
  const out: number[] = [];
  for (const g of keptUnits) {
    const [start, end] = groupRange(attention, matrix, g);
    for (let i = start; i < end; i++) out.push(i);
  }
  return out;
}

/**
 * A table for any measure: each entry gathers the kept rows/columns and measures them, cached
 * per (layer, matrix, kept count). Weight values are kept in memory while the table lives
 * (spec graphs would otherwise redraw them for every entry).
 */
export function gatherTable(graph: ModuleGraph, ranking: UnitRanking, measure: CapacityMeasure): CapacityTable {
  const values = new Map<WeightMatrix, FloatArray>();
  const valuesOf = (m: WeightMatrix): FloatArray => {
    let v = values.get(m);
    if (!v) {
      v = m.values();
      for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) throw nonFiniteMatrix(m);
      values.set(m, v);
    }
    return v;
  };
  const cache = new Map<string, number>();
  const matrixAt = (l: number, kind: UnitKind, m: number, kept: number): number => {
    const layer = graph.layers[l]!;
    const matrix = moduleOf(layer, kind).matrices[m]!;
    const cut = isCut(layer, kind, matrix);
    const key = cut ? `${l}/${kind}/${m}/${kept}` : `${l}/${kind}/${m}`;
    let capacity = cache.get(key);
    if (capacity !== undefined) return capacity;
    const full = valuesOf(matrix);
    const axis = cutAxis(matrix);
    let data: FloatArray = full;
    let rows = matrix.rows;
    let cols = matrix.cols;
    if (cut && axis) {
      const order = kind === 'heads' ? ranking.groups[l]! : ranking.neurons[l]!;
      const indices = keptAxisIndices(layer.attention, kind, matrix, topUnits(order, kept));
      if (indices.length !== (axis === 'rows' ? rows : cols)) {
        data = gatherMatrix(full, rows, cols, axis, indices);
        if (axis === 'rows') rows = indices.length;
        else cols = indices.length;
      }
    }
    capacity = checkCapacity(measure.ofMatrix({ rows, cols, data }), measure, matrix);
    cache.set(key, capacity);
    return capacity;
  };
  const moduleAt = (l: number, kind: UnitKind, kept: number): number => {
    const matrices = moduleOf(graph.layers[l]!, kind).matrices;
    let sum = 0;
    for (let m = 0; m < matrices.length; m++) sum += matrixAt(l, kind, m, kept);
    return sum;
  };
  return {
    attention: (layer, groups) => moduleAt(layer, 'heads', groups),
    ffn: (layer, neurons) => moduleAt(layer, 'ffn', neurons),
  };
}

/** A table filled ahead of time (by onnxruntime): entries for the kept counts it was given. */
export class FilledTable implements CapacityTable {
  private readonly attentionEntries: Map<number, number>[];
  private readonly ffnEntries: Map<number, number>[];

  constructor(layers: number) {
    this.attentionEntries = Array.from({ length: layers }, () => new Map());
    this.ffnEntries = Array.from({ length: layers }, () => new Map());
  }

  set(layer: number, kind: UnitKind, kept: number, capacity: number): void {
    (kind === 'heads' ? this.attentionEntries : this.ffnEntries)[layer]!.set(kept, capacity);
  }

  attention(layer: number, groups: number): number {
    return this.lookup(this.attentionEntries, layer, groups, 'key-value groups');
  }

  ffn(layer: number, neurons: number): number {
    return this.lookup(this.ffnEntries, layer, neurons, 'neurons');
  }

  private lookup(entries: Map<number, number>[], layer: number, kept: number, what: string): number {
    const value = entries[layer]?.get(kept);
    if (value === undefined) throw new Error(`internal: no capacity scored for layer ${layer} keeping ${kept} ${what}`);
    return value;
  }
}
