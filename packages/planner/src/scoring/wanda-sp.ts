/**
 * `wanda-sp`: structured Wanda, as FLAP's code defines it (CASIA-IVA-Lab/FLAP `lib/prune.py`
 * `prune_wanda_sp`, the only reference implementation): a unit's score is the Wanda score
 * |W_ij| * ||x_j|| of the matrix that reads it (`o` for attention, `down` for the FFN), averaged
 * over that matrix's outputs, summed over the input channels the unit owns:
 *
 *   channel j:  mean_i |W[i, j]| * sqrt(E[x_j^2])        (W as torch stores it: [out, in])
 *   neuron:     its channel of `down`
 *   head:       sum over its channels of `o` (here a key-value group: all its query heads' channels)
 *
 * FLAP's `scaler_row` is T * E[x_j^2] (sums of squares per sequence, averaged over sequences):
 * the factor T is the same for every channel, so the ranking is the same. q, k, v, up and gate
 * are not scored (they follow the unit). Wanda-sp prunes the same ratio in every layer and
 * corrects nothing: run it with `search: 'uniform'` and `correction: 'none'` to reproduce it.
 */
import { hasPrunableHeads, type Layer } from '@zerolm/core';
import { channelInputs, rowSums } from './baseline-inputs';
import { registerImportance, type UnitImportance } from './importance';
import type { UnitKind } from './unit-norms';

export const wandaSpImportance: UnitImportance = {
  name: 'wanda-sp',
  description: 'Wanda-sp (as in FLAP\'s code): mean |W| of the o / down rows a unit owns times the RMS of their inputs on the calibration, summed over the unit',
  async prepare(context) {
    const { model } = context;
    const calibration = await context.calibration();
    const scoresOf = (i: number, kind: UnitKind): Float64Array => {
      const layer = model.graph.layers[i]!;
      if (kind === 'heads' && !hasPrunableHeads(layer.attention)) return new Float64Array(layer.attention.kvHeads);
      const inputs = channelInputs(model, calibration, i, kind);
      const magnitude = rowSums(inputs, Math.abs);
      return Float64Array.from(inputs.units, (channels) => {
        let score = 0;
        for (const j of channels) score += (magnitude[j]! / inputs.cols) * Math.sqrt(inputs.meanSquare[j]!);
        return score;
      });
    };
    const scores = model.graph.layers.map((_, i) => ({ heads: scoresOf(i, 'heads'), ffn: scoresOf(i, 'ffn') }));
    const byLayer = new Map<Layer, number>(context.graph.layers.map((l, i) => [l, i]));
    return {
      scores: (layer, kind) => scores[byLayer.get(layer) ?? layer.index]![kind],
      details: { calibration: calibration.summary },
    };
  },
};

registerImportance(wandaSpImportance);
