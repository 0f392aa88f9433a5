/**
 * FLAP's bias compensation (`prune({ correction: 'bias' })`, CLI `--correction bias`): the kept
 * weights stay as they are, and each pruned `o` and `down` gets an output bias that adds the
 * removed channels' mean contribution,
 *
 *   b <- b + sum over removed channels j of E[x_j] W[j, :]
 *
 * (CASIA-IVA-Lab/FLAP `lib/prune.py` `compress`: `output_bias = (mean_inp * ~mask) @ W.T`), so
 * the module's output keeps its mean over the calibration tokens. Modules without an output bias
 * (LLaMA's `o_proj` and `down_proj`) get one: the exporter adds it (FLAP's own LLaMA code adds
 * zero biases for the same reason). FLAP keeps E[x] in fp16; here it is float64.
 */
import type { HfModel } from '@zerolm/adapters';
import { hasPrunableHeads, type PrunePlan } from '@zerolm/core';
import type { WeightOverride } from '@zerolm/export';
import { biasValues, groupRows, outputProjection } from '../calibration/ablation';
import type { Calibration } from '../calibration/calibrate';

/** bias + sum over `removed` rows j of mean_j W[j, :]. */
function compensated(weights: Float64Array, cols: number, mean: Float64Array, removed: readonly number[], bias: Float64Array | undefined): Float64Array {
  const out = bias ? Float64Array.from(bias) : new Float64Array(cols);
  for (const j of removed) {
    const m = mean[j]!;
    for (let c = 0; c < cols; c++) out[c] += m * weights[j * cols + c]!;
  }
  return out;
}

/** The compensating output bias of every pruned `o` and `down` of `plan`, as bias-only overrides. */
export function biasOverrides(model: HfModel, plan: PrunePlan, calibration: Calibration): WeightOverride[] {
  const overrides: WeightOverride[] = [];
  model.graph.layers.forEach((layer, i) => {
    const lp = plan.layers[i]!;
    if (lp.dropped) return;
    const moments = calibration.layers[i]!;
    if (hasPrunableHeads(layer.attention) && lp.keptGroups.length < layer.attention.kvHeads) {
      const o = outputProjection(model, i);
      const kept = new Set(lp.keptGroups);
      const removed = Array.from({ length: layer.attention.kvHeads }, (_, g) => g).filter((g) => !kept.has(g)).flatMap((g) => groupRows(layer, g));
      overrides.push({ layer: i, role: 'o', bias: compensated(o.weights, o.cols, moments.attention.mean, removed, o.bias) });
    }
    if (lp.keptNeurons.length < layer.ffn.width) {
      const down = layer.ffn.matrices.find((m) => m.role === 'down')!;
      const multiply = model.match.layers[i]!.ffn.down;
      const bias = multiply.bias ? biasValues(model, multiply.bias.tensor) : undefined;
      const kept = new Set(lp.keptNeurons);
      const removed = Array.from({ length: layer.ffn.width }, (_, j) => j).filter((j) => !kept.has(j));
      overrides.push({ layer: i, role: 'down', bias: compensated(Float64Array.from(down.values()), down.cols, moments.ffn.mean, removed, bias) });
    }
  });
  return overrides;
}
