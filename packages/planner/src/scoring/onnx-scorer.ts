/**
 * The onnxruntime scoring backend: a small ONNX graph, built in memory, that takes a batch of
 * unit masks [B, U] and computes the ZeroLM scores of the masked sub-networks:
 *
 *   t       = masks · unit_table                    [B, 2M]  (unit_table [U, 2M]: per unit and matrix,
 *   squares = t[:, :M]   kept = t[:, M:]                      squared slice norm, then cut-axis width)
 *   r       = min(kept, other)                      [B, M]   (min(rows', cols') of the masked matrix)
 *   C       = squares / max(r, 1)                   [B, M]   msv: masked ||W||_F^2 / r
 *           = sqrt(r * squares)                              nuclear-bound
 *   modules = C · module_of_matrix                  [B, 2L]  (A_0, F_0, A_1, ...)
 *   score     = modules · weights                   [B, 1]   (weights: alpha for A_l, 1 - alpha for F_l)
 *   score_log = log(1 + modules) · weights          [B, 1]
 *
 * It runs on `openSession` (CUDA first with `auto`, CPU otherwise). No ONNX operator computes
 * singular values, so only `msv` and `nuclear-bound` have this backend; the other measures are
 * scored in TypeScript.
 * Arithmetic is float32: scores agree with the float64 TypeScript path to about 1e-6 relative.
 */
import { checkAlpha, resolveMeasure, type CapacityMeasure } from '@zerolm/core';
import { DataType, encodeModel, makeGraph, makeModel, makeNode, makeTensor, makeValueInfo, type NodeProto } from '@zerolm/onnx';
import { openSession, ort, type Device, type Provider } from '@zerolm/runtime';
import { FilledTable } from './capacity-table';
import { scoresFromModules, checkMasks, scoreMasksTs, writeCountsMask, type MaskLayout, type MaskScores } from './masks';
import type { LayerCounts, UnitRanking } from './ranking';

/** Scores batches of masks (one implementation per provider). */
export interface MaskScorer {
  /** `cuda` or `cpu` for onnxruntime, `typescript` for the float64 reference. */
  readonly provider: Provider | 'typescript';
  readonly layout: MaskLayout;
  score(masks: Float32Array, batch: number): Promise<MaskScores>;
  close(): Promise<void>;
}

/** Nodes from `squares` and `rank` (both [B, M]) to `capacity`, per measure onnxruntime scores. */
const CAPACITY_NODES: Readonly<Record<string, () => NodeProto[]>> = {
  msv: () => [makeNode('Max', ['rank', 'one'], ['rank_or_one']), makeNode('Div', ['squares', 'rank_or_one'], ['capacity'])],
  'nuclear-bound': () => [makeNode('Mul', ['squares', 'rank'], ['rank_squares']), makeNode('Sqrt', ['rank_squares'], ['capacity'])],
};

/** The measures the onnxruntime scorer computes. */
export const ONNX_SCORED_MEASURES: readonly string[] = Object.keys(CAPACITY_NODES);

/** The ONNX model (bytes) that scores mask batches of `layout` with balance `alpha` under `measure` (default `msv`). */
export function buildMaskScoringModel(layout: MaskLayout, alpha: number, measure: CapacityMeasure | string = 'msv'): Uint8Array {
  checkAlpha(alpha);
  const name = resolveMeasure(measure).name;
  const capacityNodes = CAPACITY_NODES[name];
  if (!capacityNodes) throw new Error(`onnxruntime scores only ${ONNX_SCORED_MEASURES.join(' and ')}, not "${name}"`);
  const U = layout.units;
  const M = layout.matrices.length;
  const L = layout.layers.length;
  const table = new Float32Array(U * 2 * M);
  const other = new Float32Array(M);
  const moduleOfMatrix = new Float32Array(M * 2 * L);
  layout.matrices.forEach((m, i) => {
    const start = layout.layers[m.layer]!.start;
    for (let u = 0; u < m.squares.length; u++) {
      table[(start + u) * 2 * M + i] = m.squares[u]!;
      table[(start + u) * 2 * M + M + i] = m.widths[u]!;
    }
    other[i] = m.other;
    moduleOfMatrix[i * 2 * L + 2 * m.layer + (m.kind === 'heads' ? 0 : 1)] = 1;
  });
  const weights = new Float32Array(2 * L);
  for (let l = 0; l < L; l++) {
    weights[2 * l] = alpha;
    weights[2 * l + 1] = 1 - alpha;
  }
  const i64 = (values: number[]) => BigInt64Array.from(values.map(BigInt));
  const graph = makeGraph({
    name: 'zerolm_mask_scores',
    inputs: [makeValueInfo('masks', DataType.FLOAT, ['batch', U])],
    outputs: [
      makeValueInfo('modules', DataType.FLOAT, ['batch', 2 * L]),
      makeValueInfo('score', DataType.FLOAT, ['batch', 1]),
      makeValueInfo('score_log', DataType.FLOAT, ['batch', 1]),
    ],
    initializers: [
      makeTensor('unit_table', [U, 2 * M], table),
      makeTensor('other_dims', [M], other),
      makeTensor('one', [], new Float32Array([1])),
      makeTensor('module_of_matrix', [M, 2 * L], moduleOfMatrix),
      makeTensor('weights', [2 * L, 1], weights),
      makeTensor('axis1', [1], i64([1])),
      makeTensor('zero', [1], i64([0])),
      makeTensor('m', [1], i64([M])),
      makeTensor('two_m', [1], i64([2 * M])),
    ],
    nodes: [
      makeNode('MatMul', ['masks', 'unit_table'], ['t']),
      makeNode('Slice', ['t', 'zero', 'm', 'axis1'], ['squares']),
      makeNode('Slice', ['t', 'm', 'two_m', 'axis1'], ['kept']),
      makeNode('Min', ['kept', 'other_dims'], ['rank']),
      ...capacityNodes(),
      makeNode('MatMul', ['capacity', 'module_of_matrix'], ['modules']),
      makeNode('MatMul', ['modules', 'weights'], ['score']),
      makeNode('Add', ['modules', 'one'], ['modules_plus_one']),
      makeNode('Log', ['modules_plus_one'], ['log_modules']),
      makeNode('MatMul', ['log_modules', 'weights'], ['score_log']),
    ],
  });
  return encodeModel(makeModel(graph, { docString: `ZeroLM ${name} scores of masked sub-networks (zerolm planner)` }));
}

export interface OnnxScorerOptions {
  alpha: number;
  /** `msv` (default) or `nuclear-bound`. */
  measure?: CapacityMeasure | string;
  device?: Device;
}

/** A scorer on onnxruntime; `fallbackReason` says why `auto` did not get CUDA. */
export async function openOnnxMaskScorer(
  layout: MaskLayout,
  options: OnnxScorerOptions,
): Promise<MaskScorer & { fallbackReason?: string }> {
  const opened = await openSession(buildMaskScoringModel(layout, options.alpha, options.measure), options.device ?? 'auto');
  const L = layout.layers.length;
  return {
    provider: opened.provider,
    layout,
    ...(opened.fallbackReason === undefined ? {} : { fallbackReason: opened.fallbackReason }),
    async score(masks, batch) {
      checkMasks(layout, masks, batch);
      if (batch === 0) return scoresFromModules(new Float64Array(0), 0, L, options.alpha);
      const input = new ort.Tensor('float32', masks.subarray(0, batch * layout.units), [batch, layout.units]);
      const out = await opened.session.run({ masks: input });
      const modules = Float64Array.from(out['modules']!.data as Float32Array);
      const scores = scoresFromModules(modules, batch, L, options.alpha);
      // The graph's own score outputs, not recomputed ones: what onnxruntime computed.
      scores.linear.set(out['score']!.data as Float32Array);
      scores.log.set(out['score_log']!.data as Float32Array);
      return scores;
    },
    async close() {
      await opened.session.release();
    },
  };
}

/** The float64 TypeScript scorer behind the same interface. */
export function typescriptMaskScorer(layout: MaskLayout, alpha: number, measure?: CapacityMeasure | string): MaskScorer {
  return {
    provider: 'typescript',
    layout,
    score: async (masks, batch) => scoreMasksTs(layout, masks, batch, alpha, measure),
    close: async () => {},
  };
}

/** Kept counts a search may give each layer, ascending. */
export interface AllowedCounts {
  groups: readonly number[];
  neurons: readonly number[];
}

/**
 * Fills a capacity table by scoring masked sub-networks: probe row i keeps, in every layer, the
 * i-th allowed group count and the i-th allowed neuron count (the last ones once a layer runs
 * out), so max over layers of the number of allowed counts rows cover every entry.
 */
export async function fillTable(
  scorer: MaskScorer,
  ranking: UnitRanking,
  allowed: readonly AllowedCounts[],
  options: { batchSize?: number } = {},
): Promise<{ table: FilledTable; rows: number }> {
  const layout = scorer.layout;
  const L = layout.layers.length;
  const rows = Math.max(1, ...allowed.map((a) => Math.max(a.groups.length, a.neurons.length)));
  const batchSize = Math.max(1, options.batchSize ?? 64);
  const table = new FilledTable(L);
  const masks = new Float32Array(Math.min(rows, batchSize) * layout.units);
  for (let first = 0; first < rows; first += batchSize) {
    const batch = Math.min(batchSize, rows - first);
    const countsOf: LayerCounts[][] = [];
    for (let b = 0; b < batch; b++) {
      const counts = allowed.map((a) => ({
        groups: a.groups[Math.min(first + b, a.groups.length - 1)]!,
        neurons: a.neurons[Math.min(first + b, a.neurons.length - 1)]!,
        dropped: false,
      }));
      countsOf.push(counts);
      writeCountsMask(layout, ranking, counts, masks, b);
    }
    const scores = await scorer.score(masks, batch);
    for (let b = 0; b < batch; b++) {
      countsOf[b]!.forEach((c, l) => {
        table.set(l, 'heads', c.groups, scores.modules[(b * L + l) * 2]!);
        table.set(l, 'ffn', c.neurons, scores.modules[(b * L + l) * 2 + 1]!);
      });
    }
  }
  return { table, rows };
}
