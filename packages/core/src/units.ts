/**
 * Structured units of a module graph and their coupled slices, and the module graph of a pruned
 * sub-network. Every consumer (importance, scoring, export) gets slices from here, so a unit
 * means the same rows and columns everywhere.
 *
 * - Attention unit: a key-value group, i.e. one key head and one value head together with the
 *   `heads / kvHeads` query heads that read them (without grouped-query attention, one head).
 *   Its slices: q columns [g*r*d, (g+1)*r*d), k and v columns [g*d, (g+1)*d), o rows = its q
 *   columns (r = heads / kvHeads, d = head size), and the matching bias elements of q, k, v.
 * - FFN unit: one neuron j: column j of up and gate (and their biases), row j of down.
 */
import type { AttentionModule, BiasVector, FfnModule, FloatArray, Layer, ModuleGraph, WeightMatrix } from './module-graph';

export type Range = readonly [start: number, end: number];

export interface GroupSlices {
  /** Columns of q, rows of o. */
  query: Range;
  /** Columns of k and v. */
  keyValue: Range;
}

/** Whether the module's heads can be cut (dot-product attention with q, k, v and o). */
export function hasPrunableHeads(attention: AttentionModule): boolean {
  const roles = new Set(attention.matrices.map((m) => m.role));
  return attention.kind === 'attention' && attention.headDim > 0 && ['q', 'k', 'v', 'o'].every((r) => roles.has(r as never));
}

export function groupSize(attention: AttentionModule): number {
  return attention.heads / attention.kvHeads;
}

export function groupSlices(attention: AttentionModule, group: number): GroupSlices {
  const d = attention.headDim;
  const r = groupSize(attention);
  return { query: [group * r * d, (group + 1) * r * d], keyValue: [group * d, (group + 1) * d] };
}

/** Which axis of a matrix a unit cuts: columns of producers (q, k, v, up, gate), rows of consumers (o, down). */
export function cutAxis(matrix: Pick<WeightMatrix, 'role'>): 'rows' | 'cols' | undefined {
  switch (matrix.role) {
    case 'q':
    case 'k':
    case 'v':
    case 'up':
    case 'gate':
      return 'cols';
    case 'o':
    case 'down':
      return 'rows';
    default:
      return undefined;
  }
}

/** Indices (along the cut axis of `matrix`) that kv group `group` owns. */
export function groupRange(attention: AttentionModule, matrix: Pick<WeightMatrix, 'role'>, group: number): Range {
  const slices = groupSlices(attention, group);
  return matrix.role === 'k' || matrix.role === 'v' ? slices.keyValue : slices.query;
}

/** A layer's plan: which units survive. Indices refer to the original model. */
export interface LayerPlan {
  /** Original index of the layer. */
  index: number;
  /** The whole layer is removed (its residual branch skipped). */
  dropped: boolean;
  /** Kept key-value groups (each with its query heads), ascending. */
  keptGroups: number[];
  /** Kept FFN neurons, ascending. */
  keptNeurons: number[];
}

export interface PrunePlan {
  layers: LayerPlan[];
}

/** The plan that keeps everything. */
export function fullPlan(graph: ModuleGraph): PrunePlan {
  return {
    layers: graph.layers.map((layer) => ({
      index: layer.index,
      dropped: false,
      keptGroups: range(layer.attention.kvHeads),
      keptNeurons: range(layer.ffn.width),
    })),
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Checks a plan against its graph: indices in range, ascending, not empty unless the layer is dropped. */
export function validatePlan(graph: ModuleGraph, plan: PrunePlan): void {
  if (plan.layers.length !== graph.layers.length) {
    throw new Error(`the plan has ${plan.layers.length} layers, the model ${graph.layers.length}`);
  }
  plan.layers.forEach((lp, i) => {
    const layer = graph.layers[i]!;
    const check = (kept: number[], n: number, what: string) => {
      for (let k = 0; k < kept.length; k++) {
        const v = kept[k]!;
        if (!Number.isInteger(v) || v < 0 || v >= n || (k > 0 && v <= kept[k - 1]!)) {
          throw new Error(`layer ${i}: kept ${what} must be ascending indices below ${n} (got ${kept.join(', ')})`);
        }
      }
      if (!lp.dropped && kept.length === 0) throw new Error(`layer ${i} keeps no ${what}: drop the layer instead`);
    };
    check(lp.keptGroups, layer.attention.kvHeads, 'key-value groups');
    check(lp.keptNeurons, layer.ffn.width, 'FFN neurons');
    if (!hasPrunableHeads(layer.attention) && lp.keptGroups.length !== layer.attention.kvHeads && !lp.dropped) {
      throw new Error(`layer ${i}: its ${layer.attention.kind} module has no heads to cut`);
    }
  });
}

/** The indices along a matrix's cut axis that survive `layerPlan`. */
export function keptIndices(layer: Layer, matrix: WeightMatrix, layerPlan: LayerPlan): number[] | undefined {
  const axis = cutAxis(matrix);
  if (!axis) return undefined;
  if (matrix.role === 'up' || matrix.role === 'gate' || matrix.role === 'down') return layerPlan.keptNeurons;
  const out: number[] = [];
  for (const g of layerPlan.keptGroups) {
    const [start, end] = groupRange(layer.attention, matrix, g);
    for (let i = start; i < end; i++) out.push(i);
  }
  return out;
}

/** Copies the given rows or columns of a row-major matrix. */
export function gatherMatrix(values: FloatArray, rows: number, cols: number, axis: 'rows' | 'cols', indices: readonly number[]): Float64Array | Float32Array {
  const out = values instanceof Float32Array ? new Float32Array(axis === 'rows' ? indices.length * cols : rows * indices.length) : new Float64Array(axis === 'rows' ? indices.length * cols : rows * indices.length);
  if (axis === 'rows') {
    indices.forEach((r, k) => out.set(values.subarray(r * cols, (r + 1) * cols), k * cols));
  } else {
    const width = indices.length;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const target = r * width;
      for (let k = 0; k < width; k++) out[target + k] = values[base + indices[k]!]!;
    }
  }
  return out;
}

function prunedMatrix(layer: Layer, matrix: WeightMatrix, layerPlan: LayerPlan): WeightMatrix {
  const kept = keptIndices(layer, matrix, layerPlan);
  const axis = cutAxis(matrix);
  if (!kept || !axis) return matrix;
  const full = axis === 'rows' ? matrix.rows : matrix.cols;
  if (kept.length === full) return matrix;
  let cached: FloatArray | undefined;
  return {
    name: matrix.name,
    role: matrix.role,
    rows: axis === 'rows' ? kept.length : matrix.rows,
    cols: axis === 'cols' ? kept.length : matrix.cols,
    values: () => (cached ??= gatherMatrix(matrix.values(), matrix.rows, matrix.cols, axis, kept)),
    ...(matrix.source === undefined ? {} : { source: matrix.source }),
  };
}

function prunedBias(layer: Layer, bias: BiasVector, layerPlan: LayerPlan, matrices: readonly WeightMatrix[]): BiasVector {
  const owner = matrices.find((m) => m.role === bias.role);
  if (!owner || cutAxis(owner) !== 'cols') return bias;
  const kept = keptIndices(layer, owner, layerPlan)!;
  return kept.length === bias.length ? bias : { ...bias, length: kept.length };
}

/**
 * The module graph of the sub-network a plan keeps: dropped layers removed, the other layers'
 * matrices restricted to their kept rows/columns (values gathered lazily from the original).
 */
export function prunedGraph(graph: ModuleGraph, plan: PrunePlan): ModuleGraph {
  validatePlan(graph, plan);
  const layers: Layer[] = [];
  graph.layers.forEach((layer, i) => {
    const lp = plan.layers[i]!;
    if (lp.dropped) return;
    const a = layer.attention;
    const groups = hasPrunableHeads(a) ? lp.keptGroups.length : a.kvHeads;
    const attention: AttentionModule = {
      ...a,
      heads: hasPrunableHeads(a) ? groups * groupSize(a) : a.heads,
      kvHeads: groups,
      matrices: a.matrices.map((m) => (hasPrunableHeads(a) ? prunedMatrix(layer, m, lp) : m)),
      biases: a.biases.map((b) => (hasPrunableHeads(a) ? prunedBias(layer, b, lp, a.matrices) : b)),
    };
    const f = layer.ffn;
    const ffn: FfnModule = {
      ...f,
      width: lp.keptNeurons.length,
      matrices: f.matrices.map((m) => prunedMatrix(layer, m, lp)),
      biases: f.biases.map((b) => prunedBias(layer, b, lp, f.matrices)),
    };
    layers.push({ index: layers.length, attention, ffn });
  });
  // A dropped layer takes its norms with it, which the module graph cannot count.
  // Task heads are never pruned: the pruned graph keeps them as they are.
  const { otherParams, ...rest } = graph;
  return layers.length === graph.layers.length && otherParams !== undefined ? { ...rest, otherParams, layers } : { ...rest, layers };
}

export interface UnitCapacities {
  /** Per key-value group: the summed capacity of its coupled slices (q, k, v columns, o rows). */
  groups: Float64Array;
  /** Per FFN neuron: the summed capacity of its up/gate columns and down row. */
  neurons: Float64Array;
}

/**
 * The capacity of each structured unit on its own: every coupled slice measured as a matrix
 * (`measure` is any registered capacity measure) and summed over the unit's slices. Zero for a
 * unit whose slices are all zero.
 */
export function unitCapacities(layer: Layer, measure: { ofMatrix(m: { rows: number; cols: number; data: FloatArray }): number }): UnitCapacities {
  const a = layer.attention;
  const groups = new Float64Array(hasPrunableHeads(a) ? a.kvHeads : 0);
  const neurons = new Float64Array(layer.ffn.width);
  const add = (target: Float64Array, matrices: readonly WeightMatrix[], rangeOf: (m: WeightMatrix, unit: number) => Range) => {
    for (const m of matrices) {
      const axis = cutAxis(m);
      if (!axis) continue;
      const values = m.values();
      for (let unit = 0; unit < target.length; unit++) {
        const [start, end] = rangeOf(m, unit);
        const indices = Array.from({ length: end - start }, (_, i) => start + i);
        const slice = gatherMatrix(values, m.rows, m.cols, axis, indices);
        target[unit]! += measure.ofMatrix({
          rows: axis === 'rows' ? indices.length : m.rows,
          cols: axis === 'cols' ? indices.length : m.cols,
          data: slice,
        });
      }
    }
  };
  if (groups.length > 0) add(groups, a.matrices, (m, g) => groupRange(a, m, g));
  add(neurons, layer.ffn.matrices, (_, j) => [j, j + 1]);
  return { groups, neurons };
}
