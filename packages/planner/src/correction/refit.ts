/**
 * The correction applied after a plan is chosen (`prune({ correction })`, default `refit`): for
 * each kept layer that loses units, the rows of `down` (FFN) and `o` (attention) that read the
 * kept units are refitted by least squares on the calibration moments, so the module's output
 * changes as little as the kept units allow:
 *
 *   W_K <- W_K + (C_KK + lambda I)^-1 C_KD W_D,   lambda = 1e-3 tr(C_KK) / |K|
 *
 * Where the module has an output bias (GPT-2, BERT), the moments are centred and the bias absorbs
 * the removed units' mean output: b <- b + mu (W - W'), W' the refitted matrix with the removed
 * rows zero. It needs only the calibration statistics, so it applies to any selection (random
 * and magnitude too). `none` writes the sliced weights unchanged.
 */
import type { HfModel } from '@zerolm/adapters';
import { hasPrunableHeads, prunedGraph, type ModuleGraph, type PrunePlan, type WeightMatrix } from '@zerolm/core';
import { biasValues, groupRows, outputProjection } from '../calibration/ablation';
import type { Calibration } from '../calibration/calibrate';
import { ORT_MIN_SIZE, OrtAlgebra } from '../calibration/algebra';
import { absorbedBias, centred, refitRows, refitRowsOnOrt, RIDGE } from '../calibration/obs';
import type { Device } from '@zerolm/runtime';
import type { WeightOverride } from '@zerolm/export';

/** `refit` (here), `bias` (FLAP's bias compensation, `bias.ts`) or `none`. */
export type CorrectionMethod = 'refit' | 'bias' | 'none';
export const CORRECTIONS: readonly CorrectionMethod[] = ['refit', 'bias', 'none'];
export const DEFAULT_CORRECTION: CorrectionMethod = 'refit';

/** What a correction did (JSON-friendly: plan.json records it). */
export interface CorrectionSummary {
  method: CorrectionMethod;
  /** Matrices whose kept rows were refitted (one per pruned `o` or `down`). */
  matrices?: number;
  /** Output biases that absorbed the removed units' mean output. */
  biases?: number;
  /** Of those, biases added to a module that had none (`bias` on LLaMA-family modules). */
  addedBiases?: number;
  /** lambda / mean diagonal of C_KK. */
  ridge?: number;
}

export function checkCorrection(value: string): CorrectionMethod {
  if (!(CORRECTIONS as readonly string[]).includes(value)) throw new Error(`unknown correction "${value}" (known: ${CORRECTIONS.join(', ')})`);
  return value as CorrectionMethod;
}

async function refit(
  second: Float64Array,
  mean: Float64Array,
  weights: Float64Array,
  rows: number,
  cols: number,
  kept: readonly number[],
  bias: Float64Array | undefined,
  algebra: OrtAlgebra | undefined,
): Promise<{ values: Float32Array; bias?: Float64Array }> {
  const problem = { second: bias ? centred(second, mean) : second, n: rows, weights, d: cols, kept };
  const solved = algebra ? await refitRowsOnOrt(problem, algebra) : refitRows(problem);
  // Kept as float32, the precision every weight file stores them at: the overrides of all layers
  // wait in memory for the export, and in float64 they outweigh a 4-bit model (1.4 GB for 1.1B).
  const values = Float32Array.from(solved);
  return bias ? { values, bias: absorbedBias(bias, mean, weights, cols, kept, solved) } : { values };
}

/**
 * The least-squares refit of every pruned `o` and `down` of `plan` (layers the plan drops or
 * leaves whole are not touched), as weight overrides for `exportPrunedModel`. Layers are taken
 * in order (one layer's statistics in memory when they are kept on disk); solves with more than
 * `ORT_MIN_SIZE` kept rows run on onnxruntime (`device`: CUDA where it starts, else CPU).
 */
export async function refitOverrides(model: HfModel, plan: PrunePlan, calibration: Calibration, options: { device?: Device } = {}): Promise<WeightOverride[]> {
  const overrides: WeightOverride[] = [];
  const wide = plan.layers.some((lp) => !lp.dropped && (lp.keptNeurons.length > ORT_MIN_SIZE || lp.keptGroups.length * groupRowsCount(model, lp.index) > ORT_MIN_SIZE));
  const algebra = wide ? await OrtAlgebra.open(options.device ?? 'auto') : undefined;
  try {
    for (const [i, layer] of model.graph.layers.entries()) {
      const lp = plan.layers[i]!;
      if (lp.dropped) continue;
      const moments = calibration.layers[i]!;
      if (hasPrunableHeads(layer.attention) && lp.keptGroups.length < layer.attention.kvHeads) {
        const o = outputProjection(model, i);
        const kept = lp.keptGroups.flatMap((g) => groupRows(layer, g));
        overrides.push({ layer: i, role: 'o', ...(await refit(moments.attention.second, moments.attention.mean, o.weights, o.rows, o.cols, kept, o.bias, algebra)) });
      }
      if (lp.keptNeurons.length < layer.ffn.width) {
        const down = layer.ffn.matrices.find((m) => m.role === 'down')!;
        const multiply = model.match.layers[i]!.ffn.down;
        const bias = multiply.bias ? biasValues(model, multiply.bias.tensor) : undefined;
        overrides.push({ layer: i, role: 'down', ...(await refit(moments.ffn.second, moments.ffn.mean, Float64Array.from(down.values()), down.rows, down.cols, lp.keptNeurons, bias, algebra)) });
      }
    }
  } finally {
    await algebra?.release();
  }
  return overrides;
}

/** Rows of `o` one kv group owns in layer `index`. */
function groupRowsCount(model: HfModel, index: number): number {
  const attention = model.graph.layers[index]!.attention;
  return (attention.heads / attention.kvHeads) * attention.headDim;
}

/** What `refitOverrides` did, for plan.json. */
export function correctionSummary(method: CorrectionMethod, overrides: readonly WeightOverride[], model?: HfModel): CorrectionSummary {
  if (method === 'none') return { method };
  if (method === 'bias') {
    const added = model ? overrides.filter((o) => (o.role === 'o' ? model.match.layers[o.layer]!.attention.o : model.match.layers[o.layer]!.ffn.down).bias === undefined).length : 0;
    return { method, biases: overrides.length, ...(added > 0 ? { addedBiases: added } : {}) };
  }
  return { method, matrices: overrides.length, biases: overrides.filter((o) => o.bias !== undefined).length, ridge: RIDGE };
}

/**
 * The module graph of the model `exportPrunedModel(dir, plan, out, { overrides })` writes in
 * fp32: `prunedGraph(graph, plan)` with the overridden rows in place of the sliced ones (rounded
 * to float32, as the file stores them). Scoring it gives the score `zerolm score` reads from the
 * export.
 */
export function correctedGraph(graph: ModuleGraph, plan: PrunePlan, overrides: readonly WeightOverride[]): ModuleGraph {
  const pruned = prunedGraph(graph, plan);
  if (overrides.length === 0) return pruned;
  const byLayer = new Map<number, WeightOverride[]>();
  for (const o of overrides) byLayer.set(o.layer, [...(byLayer.get(o.layer) ?? []), o]);
  // Source index of each layer the pruned graph keeps.
  const sources = plan.layers.filter((l) => !l.dropped).map((l) => l.index);
  const replace = (matrices: readonly WeightMatrix[], list: readonly WeightOverride[]) =>
    matrices.map((m) => {
      // Bias-only overrides leave the sliced matrix as it is.
      const override = list.find((o) => o.role === m.role && o.values !== undefined);
      if (!override) return m;
      const values = override.values!;
      if (values.length !== m.rows * m.cols) throw new Error(`weight override for ${m.name}: ${values.length} values, expected ${m.rows} x ${m.cols}`);
      let cached: Float32Array | undefined;
      const { sumOfSquares: _dropped, ...rest } = m;
      void _dropped;
      return { ...rest, values: () => (cached ??= values instanceof Float32Array ? values : Float32Array.from(values)) };
    });
  return {
    ...pruned,
    layers: pruned.layers.map((layer, k) => {
      const list = byLayer.get(sources[k]!);
      if (!list) return layer;
      return {
        ...layer,
        attention: { ...layer.attention, matrices: replace(layer.attention.matrices, list) },
        ffn: { ...layer.ffn, matrices: replace(layer.ffn.matrices, list) },
      };
    }),
  };
}
