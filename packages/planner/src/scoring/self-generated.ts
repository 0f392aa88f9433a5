/**
 * `self-generated` (the default importance): units ranked by how much the model's output on its
 * calibration sequences needs them. By default those are the model's own samples (data-free in
 * the sense LLM-QAT uses: decoders generate from their BOS token, fill-mask encoders sample from
 * their masked-LM head; no text is read, no gradients are taken; encoders without that head fall
 * back to uniform tokens); `calibration.source` may name a text file instead. See
 * `calibration/calibrate.ts` for the sequences and the statistics.
 *
 * - FFN neurons: greedy structured OBS on (C_h + lambda I, W_down), C_h the second moment of the
 *   hidden activations (centred where `down` has an output bias); the removal order, reversed, is
 *   the importance. Exact (one neuron per step) up to 1024 neurons; up to 2048, ceil(w / 256)
 *   neurons per step; wider FFNs are ranked by the diagonal energy E[h_j^2] ||down_j||^2 (greedy
 *   OBS costs O(w^3) per layer in JavaScript, chunks or not: at BERT-base's 3072 neurons it would
 *   dominate the whole run).
 * - Attention units (a key-value group with its query heads): greedy removal by the output change
 *   after the least-squares refit of `o`, one layer at a time (`klAttentionOrders`): the KL of the
 *   model's own next-token distributions for decoders (`kl`), the squared change of the final
 *   hidden states for encoders (`hidden`). Models whose ranking would need more than 96 candidate
 *   passes (or too much memory for the reference outputs) use block OBS on (C_c + lambda I, W_o)
 *   instead. The plan result says which.
 */
import type { HfModel } from '@zerolm/adapters';
import { hasPrunableHeads, type Layer } from '@zerolm/core';
import { ablationCriterion, criterionWidth, DEFAULT_MAX_KL_PASSES, groupRows, klAttentionOrders, klPasses, MAX_REFERENCE_BYTES, outputProjection } from '../calibration/ablation';
import type { Calibration } from '../calibration/calibrate';
import { centred, obsRemovalOrder } from '../calibration/obs';
import { registerImportance, type ImportanceDetails, type UnitImportance } from './importance';
import type { UnitKind } from './unit-norms';

/** FFNs up to this width get the exact greedy OBS. */
export const EXACT_OBS_MAX_WIDTH = 1024;
/** FFNs up to this width get the chunked OBS; wider ones the diagonal energy (see the module comment for the cost). */
export const CHUNKED_OBS_MAX_WIDTH = 2048;
/** Chunked OBS takes about this many steps. */
export const CHUNKED_OBS_STEPS = 256;

/** Scores from a removal order: the first removed scores 0, the last `order.length - 1`. */
export function scoresFromOrder(order: readonly number[]): Float64Array {
  const scores = new Float64Array(order.length);
  order.forEach((unit, position) => (scores[unit] = position));
  return scores;
}

/** The down matrix of a layer (module-graph orientation, `width x hidden`) and whether it has an output bias. */
function downProjection(model: HfModel, layerIndex: number): { weights: Float64Array; rows: number; cols: number; hasBias: boolean } {
  const down = model.graph.layers[layerIndex]!.ffn.matrices.find((m) => m.role === 'down')!;
  return { weights: Float64Array.from(down.values()), rows: down.rows, cols: down.cols, hasBias: model.match.layers[layerIndex]!.ffn.down.bias !== undefined };
}

/** The FFN neuron ranking of one layer and how it was made. */
export function rankNeurons(model: HfModel, calibration: Calibration, layerIndex: number): { scores: Float64Array; method: NonNullable<ImportanceDetails['ffn']>[number] } {
  const { weights, rows: width, cols, hasBias } = downProjection(model, layerIndex);
  const moments = calibration.layers[layerIndex]!.ffn;
  if (width > CHUNKED_OBS_MAX_WIDTH) {
    const scores = new Float64Array(width);
    for (let j = 0; j < width; j++) {
      let norm = 0;
      for (let c = j * cols; c < (j + 1) * cols; c++) norm += weights[c]! * weights[c]!;
      scores[j] = moments.second[j * width + j]! * norm;
    }
    return { scores, method: { method: 'energy' } };
  }
  const chunk = width <= EXACT_OBS_MAX_WIDTH ? 1 : Math.ceil(width / CHUNKED_OBS_STEPS);
  const order = obsRemovalOrder({
    second: hasBias ? centred(moments.second, moments.mean) : moments.second,
    n: width,
    weights,
    d: cols,
    units: Array.from({ length: width }, (_, j) => [j]),
    chunk,
  });
  return { scores: scoresFromOrder(order), method: chunk === 1 ? { method: 'obs' } : { method: 'chunked-obs', chunk } };
}

/** Block OBS on `o`: the attention ranking of one layer without running the model again. */
export function blockObsGroups(model: HfModel, calibration: Calibration, layerIndex: number): Float64Array {
  const layer = model.graph.layers[layerIndex]!;
  const p = outputProjection(model, layerIndex);
  const moments = calibration.layers[layerIndex]!.attention;
  const order = obsRemovalOrder({
    second: p.bias ? centred(moments.second, moments.mean) : moments.second,
    n: p.rows,
    weights: p.weights,
    d: p.cols,
    units: Array.from({ length: layer.attention.kvHeads }, (_, g) => groupRows(layer, g)),
  });
  return scoresFromOrder(order);
}

/** Why the output-change path (KL, hidden states) cannot rank this model's attention units (undefined when it can). */
export function klUnavailable(model: HfModel, calibration: Calibration, maxPasses = DEFAULT_MAX_KL_PASSES): string | undefined {
  const criterion = ablationCriterion(model);
  const what = criterion === 'kl' ? 'KL' : 'the change of the hidden states';
  const passes = klPasses(model.graph.layers);
  if (passes > maxPasses) return `ranking by ${what} would take ${passes} passes over the calibration sequences (limit ${maxPasses})`;
  const { samples, length } = calibration.sequences;
  const bytes = samples * length * criterionWidth(model, calibration, criterion) * 4;
  if (bytes > MAX_REFERENCE_BYTES) {
    const outputs = criterion === 'kl' ? 'log-probabilities' : 'hidden states';
    return `the full model's ${outputs} on the calibration sequences would take ${(bytes / 2 ** 20).toFixed(0)} MiB (limit ${MAX_REFERENCE_BYTES / 2 ** 20} MiB)`;
  }
  return undefined;
}

export const selfGeneratedImportance: UnitImportance = {
  name: 'self-generated',
  description:
    'activation statistics on the calibration sequences (by default the model\'s own samples: no text, no gradients): structured OBS for FFN neurons, the output change (KL of its predictions, or of its hidden states for encoders) for attention units',
  async prepare(context) {
    const { model } = context;
    const calibration = await context.calibration();
    const layers = model.graph.layers;
    const neurons: Float64Array[] = [];
    const ffnMethods: NonNullable<ImportanceDetails['ffn']> = [];
    layers.forEach((_, i) => {
      const ranked = rankNeurons(model, calibration, i);
      neurons.push(ranked.scores);
      ffnMethods.push(ranked.method);
      context.onProgress?.(i + 1, layers.length, 'importance');
    });
    const reason = klUnavailable(model, calibration);
    let groups: Float64Array[];
    let attention: NonNullable<ImportanceDetails['attention']>;
    if (reason === undefined) {
      const kl = await klAttentionOrders(model, calibration, {
        device: context.device,
        ...(context.onProgress ? { onProgress: (done: number, total: number) => context.onProgress!(done, total, 'importance') } : {}),
      });
      groups = kl.orders.map(scoresFromOrder);
      attention = { method: ablationCriterion(model), passes: kl.passes };
    } else {
      groups = layers.map((layer, i) => (hasPrunableHeads(layer.attention) ? blockObsGroups(model, calibration, i) : new Float64Array(layer.attention.kvHeads)));
      attention = { method: 'block-obs', reason };
    }
    const byLayer = new Map<Layer, number>(context.graph.layers.map((l, i) => [l, i]));
    return {
      scores(layer: Layer, kind: UnitKind) {
        const i = byLayer.get(layer) ?? layer.index;
        return kind === 'ffn' ? neurons[i]! : groups[i]!;
      },
      details: { calibration: calibration.summary, attention, ffn: ffnMethods },
    };
  },
};

registerImportance(selfGeneratedImportance);
