/**
 * Squared norms of the coupled weight slices of every structured unit (a key-value group or an
 * FFN neuron, see `units.ts` in @zerolm/core). Importance rules and the `msv` scorers both start
 * from these numbers, so they are computed once per matrix and kept beside it.
 */
import {
  cutAxis,
  groupRange,
  hasPrunableHeads,
  type Layer,
  type WeightMatrix,
} from '@zerolm/core';

/** The two kinds of prunable unit inside a layer. */
export type UnitKind = 'heads' | 'ffn';

export const UNIT_KINDS: readonly UnitKind[] = ['heads', 'ffn'];

/** Spec graphs draw their values on every `values()` call; one pass per matrix is enough. */
const indexNormCache = new WeakMap<WeightMatrix, Float64Array>();

/** The error for a matrix holding NaN or infinite values (names the matrix). */
export function nonFiniteMatrix(matrix: WeightMatrix): Error {
  return new Error(
    `weight matrix ${matrix.name} (${matrix.role}, ${matrix.rows} x ${matrix.cols}) contains NaN or infinite values: ` +
      'cannot rank or score its units',
  );
}

/**
 * Squared norm of every index along the matrix's cut axis: per column of q, k, v, up and gate,
 * per row of o and down. A matrix that no unit cuts (`mix`) gets per-row norms, whose sum is its
 * squared Frobenius norm. Throws when a value is NaN or infinite.
 */
export function indexSquaredNorms(matrix: WeightMatrix): Float64Array {
  const cached = indexNormCache.get(matrix);
  if (cached) return cached;
  const { rows, cols } = matrix;
  const values = matrix.values();
  if (values.length !== rows * cols) {
    throw new Error(`weight matrix ${matrix.name} holds ${values.length} values, expected ${rows} x ${cols}`);
  }
  const byColumn = cutAxis(matrix) === 'cols';
  const norms = new Float64Array(byColumn ? cols : rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    if (byColumn) {
      for (let c = 0; c < cols; c++) {
        const v = values[base + c]!;
        norms[c] += v * v;
      }
    } else {
      let sum = 0;
      for (let c = 0; c < cols; c++) {
        const v = values[base + c]!;
        sum += v * v;
      }
      norms[r] = sum;
    }
  }
  for (let i = 0; i < norms.length; i++) if (!Number.isFinite(norms[i]!)) throw nonFiniteMatrix(matrix);
  indexNormCache.set(matrix, norms);
  return norms;
}

/** ||W||_F^2 of a matrix (from the cached per-index norms). */
export function squaredFrobenius(matrix: WeightMatrix): number {
  let sum = 0;
  for (const v of indexSquaredNorms(matrix)) sum += v;
  return sum;
}

/** The coupled slices of one kind of unit in one layer, as squared norms. */
export interface UnitSliceNorms {
  /** Number of units (kv groups, or neurons). */
  units: number;
  /** The matrices the units cut (q, k, v, o for heads; up, gate, down for ffn). */
  matrices: WeightMatrix[];
  /** Per matrix, per unit: squared Frobenius norm of the unit's slice of that matrix. */
  norms: Float64Array[];
  /** Per matrix: how many indices of its cut axis one unit owns (r * d for q and o, d for k and v, 1 for neurons). */
  width: number[];
}

/**
 * Per-unit squared norms of every matrix a kind of unit cuts. A layer whose token mixer has no
 * prunable heads has no head units (`units` is 0).
 */
export function unitSliceNorms(layer: Layer, kind: UnitKind): UnitSliceNorms {
  if (kind === 'ffn') {
    const matrices = layer.ffn.matrices.filter((m) => cutAxis(m) !== undefined);
    return {
      units: layer.ffn.width,
      matrices,
      norms: matrices.map((m) => indexSquaredNorms(m)),
      width: matrices.map(() => 1),
    };
  }
  const attention = layer.attention;
  if (!hasPrunableHeads(attention)) return { units: 0, matrices: [], norms: [], width: [] };
  const matrices = attention.matrices.filter((m) => cutAxis(m) !== undefined);
  const groups = attention.kvHeads;
  const norms = matrices.map((m) => {
    const perIndex = indexSquaredNorms(m);
    const out = new Float64Array(groups);
    for (let g = 0; g < groups; g++) {
      const [start, end] = groupRange(attention, m, g);
      let sum = 0;
      for (let i = start; i < end; i++) sum += perIndex[i]!;
      out[g] = sum;
    }
    return out;
  });
  return {
    units: groups,
    matrices,
    norms,
    width: matrices.map((m) => {
      const [start, end] = groupRange(attention, m, 0);
      return end - start;
    }),
  };
}
