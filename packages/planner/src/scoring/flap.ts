/**
 * `flap`: FLAP's structured criterion, WIFV with its adaptive structure (AL-AM), as its code
 * defines them (CASIA-IVA-Lab/FLAP `lib/prune.py` `prune_flap`, `lib/layerwrapper.py` `BiasGPT`):
 *
 *   channel j of `o` / `down`:  m_j = fluc_j * sum_i W[i, j]^2     (W as torch stores it: [out, in])
 *
 * with fluc_j the fluctuation of the channel's input over the calibration tokens. Attention
 * channels use m_j^2 (FLAP squares the attention metric). Each module's channel metrics are
 * standardized per layer ((x - mean) / std, unbiased std over the layer's channels); a head scores
 * the mean of its channels' standardized values, a neuron its own. The scores then compare across
 * layers and between heads and neurons: `search: 'global'` keeps the highest-scoring units of the
 * whole model (FLAP's AL-AM), and `correction: 'bias'` is FLAP's bias compensation.
 *
 * Where this differs from FLAP's code:
 * - fluc_j is the variance E[x_j^2] - E[x_j]^2 over all calibration tokens (from the calibration
 *   moments). FLAP runs a per-sequence recurrence about a running mean that skips the first
 *   sequence and carries a factor T; the factor changes nothing after standardization, and the
 *   running mean only shifts values slightly.
 * - a unit here is a key-value group (all its query heads' channels); FLAP's LLaMA-1 has no
 *   grouped-query attention, so its head is one query head.
 */
import { hasPrunableHeads, type Layer } from '@zerolm/core';
import { channelInputs, rowSums } from './baseline-inputs';
import { registerImportance, type UnitImportance } from './importance';
import type { UnitKind } from './unit-norms';

/** (x - mean) / std with the unbiased std (torch.std); all zeros when the values do not vary. */
export function standardize(values: Float64Array): Float64Array {
  const n = values.length;
  let mean = 0;
  for (const v of values) mean += v;
  mean /= n;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  const std = n > 1 ? Math.sqrt(squares / (n - 1)) : 0;
  return Float64Array.from(values, (v) => (std > 0 ? (v - mean) / std : 0));
}

export const flapImportance: UnitImportance = {
  name: 'flap',
  description:
    'FLAP (WIFV, as in its code): variance of each o / down input channel on the calibration times its squared output-weight norm (squared again for attention), standardized per layer; compares across layers (search global)',
  async prepare(context) {
    const { model } = context;
    const calibration = await context.calibration();
    const scoresOf = (i: number, kind: UnitKind): Float64Array => {
      const layer = model.graph.layers[i]!;
      if (kind === 'heads' && !hasPrunableHeads(layer.attention)) return new Float64Array(layer.attention.kvHeads);
      const inputs = channelInputs(model, calibration, i, kind);
      const norms = rowSums(inputs, (w) => w * w);
      const metric = Float64Array.from(norms, (norm, j) => {
        const fluctuation = Math.max(0, inputs.meanSquare[j]! - inputs.mean[j]! ** 2);
        const m = fluctuation * norm;
        return kind === 'heads' ? m * m : m;
      });
      const z = standardize(metric);
      return Float64Array.from(inputs.units, (channels) => {
        let sum = 0;
        for (const j of channels) sum += z[j]!;
        return sum / channels.length;
      });
    };
    const scores = model.graph.layers.map((_, i) => ({ heads: scoresOf(i, 'heads'), ffn: scoresOf(i, 'ffn') }));
    const byLayer = new Map<Layer, number>(context.graph.layers.map((l, i) => [l, i]));
    return {
      scores: (layer, kind) => scores[byLayer.get(layer) ?? layer.index]![kind],
      comparable: true,
      details: { calibration: calibration.summary },
    };
  },
};

registerImportance(flapImportance);
