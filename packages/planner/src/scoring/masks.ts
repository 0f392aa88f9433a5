/**
 * Candidates as masks over units, and the ZeroLM score of a batch of masks in TypeScript (the
 * reference the onnxruntime scorer must agree with), for the measures computed from ||W||_F^2
 * alone (`msv`, `nuclear-bound`).
 *
 * Layout: each layer owns a contiguous run of units, in this order: its kv groups (none when its
 * token mixer has no prunable heads), its FFN neurons, and one "alive" unit that is 1 unless the
 * layer is dropped. Matrices no unit cuts (a `mix` matrix, or every matrix of a mixer without
 * heads) belong to the alive unit, so dropping a layer removes them too, as `prunedGraph` does.
 *
 * For a mask row x, matrix m of the masked sub-network has
 *   ||W'_m||_F^2 = sum_u x_u * squares[u, m]     kept cut dimension = sum_u x_u * widths[u, m]
 *   C(W'_m) = measure.fromSumOfSquares(||W'_m||_F^2, kept cut dimension, other_m)
 *           (msv: ||W'_m||_F^2 / min(other_m, kept), 0 when that is 0; nuclear-bound:
 *           sqrt(min(other_m, kept) * ||W'_m||_F^2))
 * and A_l, F_l, the linear and log scores follow as in `scoreReport`.
 */
import { checkAlpha, cutAxis, type CapacityMeasure, type LayerPlan, type ModuleGraph } from '@zerolm/core';
import { isCut, moduleOf, sumOfSquaresForm } from './capacity-table';
import { planFromCounts, type LayerCounts, type UnitRanking } from './ranking';
import { squaredFrobenius, unitSliceNorms, type UnitKind } from './unit-norms';

const { min, log1p } = Math;

export interface LayerUnitRange {
  /** First unit of the layer (its first kv group, or its first neuron). */
  start: number;
  /** Number of kv-group units (0 when the mixer has no prunable heads). */
  groups: number;
  neurons: number;
  /** Index of the layer's alive unit (the layer's last unit). */
  alive: number;
}

export interface MaskMatrix {
  layer: number;
  kind: UnitKind;
  name: string;
  /** The dimension the units do not cut. */
  other: number;
  /** Over the layer's units (start..alive): squared slice norm and cut-axis width per unit. */
  squares: Float64Array;
  widths: Float64Array;
}

export interface MaskLayout {
  /** Units in a mask row. */
  units: number;
  layers: LayerUnitRange[];
  /** Every Attention and FFN matrix, layer by layer, Attention first. */
  matrices: MaskMatrix[];
}

/** The unit layout of a graph, with each unit's squared norm and width in every matrix. */
export function maskLayout(graph: ModuleGraph): MaskLayout {
  const layers: LayerUnitRange[] = [];
  const matrices: MaskMatrix[] = [];
  let next = 0;
  graph.layers.forEach((layer, l) => {
    const heads = unitSliceNorms(layer, 'heads');
    const ffn = unitSliceNorms(layer, 'ffn');
    const range: LayerUnitRange = { start: next, groups: heads.units, neurons: ffn.units, alive: next + heads.units + ffn.units };
    next = range.alive + 1;
    layers.push(range);
    const length = range.alive - range.start + 1;
    for (const kind of ['heads', 'ffn'] as const) {
      const slices = kind === 'heads' ? heads : ffn;
      const offset = kind === 'heads' ? 0 : heads.units;
      for (const matrix of moduleOf(layer, kind).matrices) {
        const squares = new Float64Array(length);
        const widths = new Float64Array(length);
        let other: number;
        if (isCut(layer, kind, matrix)) {
          const i = slices.matrices.indexOf(matrix);
          squares.set(slices.norms[i]!, offset);
          widths.fill(slices.width[i]!, offset, offset + slices.units);
          other = cutAxis(matrix) === 'cols' ? matrix.rows : matrix.cols;
        } else {
          squares[length - 1] = squaredFrobenius(matrix);
          widths[length - 1] = matrix.rows;
          other = matrix.cols;
        }
        matrices.push({ layer: l, kind, name: matrix.name, other, squares, widths });
      }
    }
  });
  return { units: next, layers, matrices };
}

/** Writes the mask of one plan (kept groups and neurons per layer) into row `row` of `masks`. */
export function writePlanMask(layout: MaskLayout, plan: readonly LayerPlan[], masks: Float32Array, row: number): void {
  const base = row * layout.units;
  masks.fill(0, base, base + layout.units);
  plan.forEach((lp, l) => {
    const range = layout.layers[l]!;
    if (lp.dropped) return;
    masks[base + range.alive] = 1;
    if (range.groups > 0) for (const g of lp.keptGroups) masks[base + range.start + g] = 1;
    for (const j of lp.keptNeurons) masks[base + range.start + range.groups + j] = 1;
  });
}

/** Writes the mask of per-layer kept counts (top-k units of `ranking`) into row `row`. */
export function writeCountsMask(layout: MaskLayout, ranking: UnitRanking, counts: readonly LayerCounts[], masks: Float32Array, row: number): void {
  writePlanMask(layout, planFromCounts(ranking, counts).layers, masks, row);
}

/** Scores of a batch of masks. */
export interface MaskScores {
  batch: number;
  layers: number;
  /** Row-major [batch, 2 * layers]: A_0, F_0, A_1, F_1, ... (module capacities). */
  modules: Float64Array;
  /** sum_l alpha * A_l + (1 - alpha) * F_l */
  linear: Float64Array;
  /** sum_l alpha * log(1 + A_l) + (1 - alpha) * log(1 + F_l) */
  log: Float64Array;
}

/** Linear and log scores from module capacities (shared by both scorers, in float64). */
export function scoresFromModules(modules: Float64Array, batch: number, layers: number, alpha: number): MaskScores {
  checkAlpha(alpha);
  const linear = new Float64Array(batch);
  const log = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    let lin = 0;
    let lg = 0;
    for (let l = 0; l < layers; l++) {
      const a = modules[(b * layers + l) * 2]!;
      const f = modules[(b * layers + l) * 2 + 1]!;
      lin += alpha * a + (1 - alpha) * f;
      lg += alpha * log1p(a) + (1 - alpha) * log1p(f);
    }
    linear[b] = lin;
    log[b] = lg;
  }
  return { batch, layers, modules, linear, log };
}

/** The scores of `batch` mask rows under `measure` (default `msv`), in float64 TypeScript. */
export function scoreMasksTs(layout: MaskLayout, masks: Float32Array, batch: number, alpha: number, measure?: CapacityMeasure | string): MaskScores {
  checkMasks(layout, masks, batch);
  const form = sumOfSquaresForm(measure);
  const layers = layout.layers.length;
  const modules = new Float64Array(batch * layers * 2);
  for (let b = 0; b < batch; b++) {
    const base = b * layout.units;
    for (const m of layout.matrices) {
      const start = base + layout.layers[m.layer]!.start;
      let squares = 0;
      let kept = 0;
      for (let u = 0; u < m.squares.length; u++) {
        const x = masks[start + u]!;
        if (x !== 0) {
          squares += x * m.squares[u]!;
          kept += x * m.widths[u]!;
        }
      }
      if (min(m.other, kept) > 0) modules[(b * layers + m.layer) * 2 + (m.kind === 'heads' ? 0 : 1)] += form.fromSumOfSquares(squares, kept, m.other);
    }
  }
  return scoresFromModules(modules, batch, layers, alpha);
}

export function checkMasks(layout: MaskLayout, masks: Float32Array, batch: number): void {
  if (!Number.isInteger(batch) || batch < 0 || masks.length < batch * layout.units) {
    throw new Error(`masks hold ${masks.length} values, too few for ${batch} rows of ${layout.units} units`);
  }
}
